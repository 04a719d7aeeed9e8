"""Chapter 5's experiment: how the shrinkage of early quantization depends on the codebook size K.

The paper's claim C5 says the shrinkage grows with K at a fixed code dimension: the perplexity of a
codebook k-means-initialized on the *untrained* encoder and trained jointly (the paper's baseline) plateaus
at large K, and its reconstruction falls behind deferred quantization above some K. This chapter
illustrates the mechanism, and judges nothing: it sweeps K over powers of two for a small convolutional
VQ-VAE on images that load offline, both schedules on the same seeds and the same step budget (deferred:
the first half as a plain autoencoder), and draws the paper's Figure 4 (reconstruction error, perplexity,
utilization, codebook spread against K) with intervals over seeds, then the shrunk / deferred ratios paired
per seed. C5 is judged on ten seeds in the real-image chapter (:mod:`vqstudy.chapters.real_images`).

Notebook: ``notebooks/05_codebook_size.ipynb``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .. import notebook as nbk
from .. import plots, style
from ..claims import paired_effect, side_of
from ..config import RunConfig
from ..data import Dataset, load_dataset, train_test_split
from ..notebook import check_int, check_ints, param
from ..tables import by_seed, fmt_effect, fmt_value, results_frame, summary_table
from ..train import RunResult, train
from .common import IMAGE_DATASETS, ImageTokenizerParameters, tokenizer_config

DATASETS = IMAGE_DATASETS
JOINT = "joint (k-means on untrained encoder)"   # the paper's baseline: the shrunk arm of every ratio
DEFERRED = "deferred"
SCHEDULES = (JOINT, DEFERRED)
METRICS = ["recon_error", "perplexity", "utilization", "codebook_centered_cosine_spread"]  # Figure 4's panels
RATIO_METRICS = ("perplexity", "recon_error")
PANEL_TITLES = {"recon_error": "Held-out reconstruction MSE", "perplexity": "Perplexity (codes in use)",
                "utilization": "Utilization (share of K)",
                "codebook_centered_cosine_spread": "Codebook centered cosine spread"}
N_SHOWN = 10   # held-out images in the reconstruction figure: the first of each class
# the prose's words for where a shrunk / deferred reconstruction ratio's interval lies relative to 1
SIDE_WORDS = {"below": "worse (the whole interval lies below 1)", "above": "better (the whole interval lies above 1)",
              "includes": "neither measurably better nor worse (the interval contains 1)"}


def check_log2_sizes(name: str, values: Any) -> list[int]:
    """At least three distinct exponents >= 1, in increasing order: the sweep's smallest and largest K are
    its first and last entries."""
    return sorted(check_ints(name, values, low=1, min_len=3))


@dataclass(frozen=True)
class Parameters(ImageTokenizerParameters):
    """Chapter 5's parameters: the K sweep, its model and budget (an illustration: a few seeds suffice)."""
    seeds: list[int] = param([0, 1, 2], check_ints, low=0, min_len=1)
    steps: int = param(400, check_int, low=10)
    log2_sizes: list[int] = param([3, 5, 7, 9], check_log2_sizes)

    def full_profile(self) -> dict[str, Any]:
        """Five seeds, four times the steps, K from 2^4 to 2^12 (still no verdict here)."""
        return {"seeds": list(range(5)), "steps": 4 * self.steps, "log2_sizes": list(range(4, 13))}

    @property
    def sizes(self) -> list[int]:
        """The codebook sizes K of the sweep, increasing."""
        return [2 ** n for n in self.log2_sizes]


def work_ratio(params: Parameters) -> float:
    """How many times this run's training work the full profile does (the reproducibility page's estimate)."""
    return nbk.full_profile_work_ratio(params.profile, 5 / len(params.seeds), 4, 9 / len(params.log2_sizes))


# --- the runs ---------------------------------------------------------------------------------------

def base_config(params: Parameters) -> RunConfig:
    """The one configuration every run shares; the sweep changes only K, the schedule and the seed."""
    return tokenizer_config(params, params.steps)


def schedule_changes(steps: int) -> dict[str, dict[str, Any]]:
    """The train settings of each schedule: joint from step 0, or deferred after half the budget as a
    plain autoencoder (the same total steps, so the two are compared at equal cost)."""
    return {JOINT: {"schedule": "joint"}, DEFERRED: {"schedule": "deferred", "warmup_steps": steps // 2}}


def sweep_configs(params: Parameters, base: RunConfig) -> tuple[list[RunConfig], list[str]]:
    """Every run of the sweep and its schedule's label, ordered by K, then schedule, then seed."""
    configs, labels = [], []
    for k in params.sizes:
        for name, change in schedule_changes(params.steps).items():
            for seed in params.seeds:
                configs.append(base.replace(quantizer={"codebook_size": k}, train={**change, "seed": seed}))
                labels.append(name)
    return configs, labels


@dataclass(frozen=True)
class Images:
    """The chapter's image set, split as every run splits it; the held-out part is what every number measures."""
    full: Dataset
    train: Dataset
    test: Dataset
    grid: int   # the side of the token grid the encoder makes of one image


def load_images(base: RunConfig) -> Images:
    """The data set of ``base`` and its stratified held-out split (the runs' own split)."""
    full = load_dataset(base.data)
    train_part, test_part = train_test_split(full, base.data.test_fraction, seed=base.data.seed)
    return Images(full, train_part, test_part, full.image_shape[1] // 2 ** base.model.downsample)


def setup_text(params: Parameters, base: RunConfig, images: Images) -> str:
    """What the sweep trains on and how: data, split, token grid, sizes, budget, seeds."""
    n_train, grid = len(images.train), images.grid
    return "\n".join([
        images.full.description,
        f"train {n_train} / held-out {len(images.test)} images; token grid {grid}x{grid} "
        f"({n_train * grid * grid:,} training vectors of dimension {params.latent_dim})",
        f"K = {', '.join(f'2^{n}' for n in params.log2_sizes)}; {params.steps} steps, batch {params.batch_size}, "
        f"Adam lr {base.train.lr}, beta {base.quantizer.beta}, seeds {params.seeds}"])


def run_frame(runs: Sequence[RunResult], configs: Sequence[RunConfig], labels: Sequence[str]) -> pd.DataFrame:
    """One row per run (:func:`vqstudy.tables.results_frame`) with its K and log2 K."""
    df = results_frame(runs, labels)
    df["K"] = [c.quantizer.codebook_size for c in configs]
    df["log2 K"] = np.log2(df["K"]).astype(int)
    return df


# --- Figure 4 and the paired ratios ---------------------------------------------------------------

def metric_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean ± 95% interval of Figure 4's metrics per (log2 K, schedule)."""
    return summary_table(df, by=["log2 K", "condition"], metrics=METRICS).drop(columns="runs")


def metrics_figure(df: pd.DataFrame, sizes: Sequence[int]) -> plt.Figure:
    """The paper's Figure 4 at our scale: each metric against K per schedule, perplexity = K for reference."""
    fig, axes = style.figure(2, 2, panel_height=2.2, sharex=True)
    for ax, (metric, title) in zip(axes.flat, PANEL_TITLES.items()):
        plots.metric_lines(ax, df, "K", metric, hue="condition", logx=True, ylabel="", xlabel="codebook size K")
        ax.set_title(title)
    axes[0, 1].plot(sizes, sizes, ls="--", c=style.REFERENCE, lw=1, label="perplexity = K")
    axes[0, 1].set(yscale="log")
    axes[0, 0].set(yscale="log")
    handles, names = axes[0, 0].get_legend_handles_labels()
    ref, ref_name = style.reference_handle("perplexity = K")
    style.shared_legend(fig, handles + [ref], names + [ref_name])
    return fig


def paired_ratios(df: pd.DataFrame, sizes: Sequence[int]) -> dict[int, dict[str, tuple[float, float, float]]]:
    """Per K and metric, shrunk / deferred as the geometric mean [95% interval] of the per-seed ratios."""
    return {k: {m: paired_effect(by_seed(df, m, K=k, condition=JOINT), by_seed(df, m, K=k, condition=DEFERRED))
                for m in RATIO_METRICS} for k in sizes}


def seed_pairs(df: pd.DataFrame) -> pd.DataFrame:
    """The perplexity and reconstruction error of each (K, seed), one column per schedule."""
    return df.pivot_table(index=["K", "seed"], columns="condition", values=["recon_error", "perplexity"])


def per_seed_ratios(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per (K, seed): the shrunk / deferred ratio of each of :data:`RATIO_METRICS`."""
    return pd.DataFrame({m: pairs[m][JOINT] / pairs[m][DEFERRED] for m in RATIO_METRICS}).reset_index()


def ratio_table(ratios: Mapping[int, Mapping[str, Sequence[float]]], pairs: pd.DataFrame,
                per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per K: the paired ratios, how many seeds reconstruct better deferred, and each schedule's mean perplexity."""
    return pd.DataFrame({
        "perplexity ratio shrunk/deferred": {k: fmt_effect(r["perplexity"]) for k, r in ratios.items()},
        "recon MSE ratio shrunk/deferred": {k: fmt_effect(r["recon_error"]) for k, r in ratios.items()},
        "seeds with deferred better recon": per_seed.groupby("K")["recon_error"].apply(
            lambda v: f"{int((v > 1).sum())}/{len(v)}"),
        "perplexity shrunk": pairs["perplexity"][JOINT].groupby("K").mean().map(fmt_value),
        "perplexity deferred": pairs["perplexity"][DEFERRED].groupby("K").mean().map(fmt_value),
    })


def ratio_figure(per_seed: pd.DataFrame) -> plt.Figure:
    """Each ratio against K: mean and interval over seeds, each seed's line in grey, 1 (no difference) dashed."""
    fig, axes = style.figure(1, 2, panel_height=2.4)
    for ax, (metric, ylabel) in zip(axes, [("perplexity", "perplexity shrunk / deferred"),
                                           ("recon_error", "recon MSE shrunk / deferred")]):
        plots.metric_lines(ax, per_seed, "K", metric, logx=True, xlabel="codebook size K", ylabel=ylabel)
        for _, g in per_seed.groupby("seed"):
            ax.plot(g["K"], g[metric], c=style.REFERENCE, lw=0.8, alpha=0.6)
        ax.axhline(1, ls="--", c="black", lw=1)
    return fig


# --- what the reconstructions look like -------------------------------------------------------------

def retrain_shown(configs: Sequence[RunConfig], labels: Sequence[str], runs: Sequence[RunResult], k: int,
                  seed: int) -> dict[tuple[int, str], RunResult]:
    """Retrain each schedule's run at ``k`` and ``seed`` in this process, to show its model (the sweep keeps
    none); fails unless the retrained run reproduces the sweep's exactly."""
    shown = {}
    for name in SCHEDULES:
        i = next(j for j, c in enumerate(configs)
                 if c.quantizer.codebook_size == k and labels[j] == name and c.train.seed == seed)
        run = train(configs[i])
        assert run.final["recon_error"] == runs[i].final["recon_error"], "a re-run differs from the sweep"
        shown[(k, name)] = run
    return shown


def first_of_each_class(test: Dataset, n: int = N_SHOWN) -> torch.Tensor:
    """The first held-out image of each class (at most ``n``), in class order."""
    pick = np.concatenate([np.flatnonzero(test.labels.numpy() == c)[:1] for c in range(10)])[:n]
    return test.x[pick]


def reconstruction_rows(shown: Mapping[tuple[int, str], RunResult], originals: torch.Tensor,
                        device: str) -> list[tuple[str, torch.Tensor]]:
    """(row label, images): the originals, then each shown run's reconstructions of them."""
    rows = [("held-out originals", originals)]
    for (k, name), run in shown.items():
        rec = run.model.reconstruct(originals.to(device)).cpu().clamp(0, 1)
        rows.append((f"K = $2^{{{int(math.log2(k))}}}$, {name.split(' ')[0]}\nMSE {run.final['recon_error']:.3g}", rec))
    return rows


def reconstruction_figure(rows: Sequence[tuple[str, torch.Tensor]], n_show: int = N_SHOWN) -> plt.Figure:
    """One row of images per entry of ``rows`` (grey-level or colour), labelled on the left."""
    fig, axes = plt.subplots(len(rows), n_show, figsize=(style.WIDTH_IN, 0.78 * len(rows)), layout="constrained")
    for r, (title, imgs) in enumerate(rows):
        for c in range(n_show):
            img = imgs[c].permute(1, 2, 0).numpy()
            axes[r, c].imshow(img[..., 0] if img.shape[-1] == 1 else img,
                              cmap="gray_r" if img.shape[-1] == 1 else None, vmin=0, vmax=1)
            axes[r, c].set(xticks=[], yticks=[])
        axes[r, 0].set_ylabel(title, rotation=0, ha="right", va="center")
    fig.get_layout_engine().set(w_pad=0.01, h_pad=0.01, wspace=0.02, hspace=0.02)
    return fig


# --- what the prose states and the results file records ---------------------------------------------

def means(df: pd.DataFrame) -> pd.DataFrame:
    """The mean of each of Figure 4's metrics per (schedule, K)."""
    return df.groupby(["condition", "K"])[METRICS].mean()


def prose_values(params: Parameters, images: Images, df: pd.DataFrame,
                 ratios: Mapping[int, Mapping[str, Sequence[float]]], per_seed: pd.DataFrame) -> dict[str, str]:
    """Every number and word of the chapter's findings, as text from this run (glued into the prose)."""
    summary = means(df)
    kmin, kmax = params.sizes[0], params.sizes[-1]
    small, large = ratios[kmin], ratios[kmax]
    return {
        "c5_data": images.full.description.split(":")[0], "c5_n_seeds": str(len(params.seeds)),
        "c5_steps": f"{params.steps:,}", "c5_kmin": str(kmin), "c5_kmax": str(kmax),
        "c5_ppl_small": fmt_effect(small["perplexity"]), "c5_ppl_large": fmt_effect(large["perplexity"]),
        "c5_mse_small": fmt_effect(small["recon_error"]), "c5_mse_large": fmt_effect(large["recon_error"]),
        "c5_ppl_trend": "falls" if large["perplexity"][0] < small["perplexity"][0] else "does not fall",
        "c5_util_joint": f"{summary.loc[(JOINT, kmax), 'utilization']:.0%}",
        "c5_util_deferred": f"{summary.loc[(DEFERRED, kmax), 'utilization']:.0%}",
        "c5_small_k_word": SIDE_WORDS[side_of(small["recon_error"])],
        "c5_large_k_word": SIDE_WORDS[side_of(large["recon_error"])],
        "c5_small_k_seeds": str(int((per_seed[per_seed["K"] == kmin]["recon_error"] < 1).sum())),
        "c5_cos_joint": f"{summary.loc[(JOINT, kmax), 'codebook_centered_cosine_spread']:.3g}",
        "c5_cos_deferred": f"{summary.loc[(DEFERRED, kmax), 'codebook_centered_cosine_spread']:.3g}",
        "c5_image_size": f"{images.full.image_shape[1]}×{images.full.image_shape[2]}",
        "c5_positions": f"{len(images.test) * images.grid * images.grid:,}",
    }


def numbers(params: Parameters, base: RunConfig, df: pd.DataFrame,
            ratios: Mapping[int, Mapping[str, Sequence[float]]]) -> dict[str, Any]:
    """What the results file records: the work ratio, each (schedule, K)'s mean metrics, the paired ratios
    and the shared configuration."""
    return {"full_profile_work_ratio": work_ratio(params),
            "summary": {f"{c} | K={k}": row for (c, k), row in means(df).to_dict(orient="index").items()},
            "ratio_shrunk_to_deferred": {str(k): r for k, r in ratios.items()},
            "config": base.to_dict()}
