"""Chapter 1's experiment: the paper's synthetic data, and what an untrained encoder does to it.

The paper's baseline initializes the codebook by k-means on the *untrained* encoder's outputs; deferred
quantization runs k-means on the *trained* encoder's outputs. This chapter shows the data (a mixture of
10 isotropic Gaussians at several input dimensions) and measures how the two encoders' outputs differ in
scale, spectrum, separation and number of distinguishable modes, judging claim C3 (the untrained
encoder's outputs fall into fewer distinguishable modes) at the paper's input dimension, 8.

Each run is a deferred run whose warm-up is the plain autoencoder and which stops one VQ step after it:
the trained encoder is the run's, the untrained one is rebuilt from the same seed
(:func:`vqstudy.train.untrained_model`). The notebook is ``notebooks/01_synthetic_data.ipynb``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
import torch

from .. import notebook as nbk
from .. import plots, style
from ..analysis import embedding_geometry
from ..config import RunConfig
from ..data import Dataset, gaussian_mixture
from ..diagnostics import class_geometry, covariance_eigenvalues
from ..executors import map_jobs
from ..notebook import check_int, check_sorted_ints, param
from ..results import Verdict
from ..seedbatch import train_seeds
from ..tables import by_seed, contrast, show_table, summary_table
from ..train import RunResult, untrained_model

ENCODERS = ("untrained", "trained")     # the two arms of C3, treatment first
METRICS = ["variance ratio", "effective dim", "participation ratio", "Fisher ratio", "modes found", "silhouette"]
PLOTTED = ["variance ratio", "participation ratio", "Fisher ratio", "modes found"]   # the metrics figure's panels
FULL_SEEDS = list(range(10, 30))        # the full profile's seeds: 20 others than the quick profile's
FULL_DIMS = [2, 4, 8, 16, 32, 64]


@dataclass(frozen=True)
class Parameters(nbk.RunParameters):
    """Chapter 1's parameters: the seeds, dimensions and encoder whose outputs are measured."""
    primary_dim: int = param(8, check_int, low=2)
    dims: list[int] = param([2, 8, 32], check_sorted_ints, low=2, min_len=1)
    secondary_seeds: int = param(2, check_int, low=1)
    ae_steps: int = param(750, check_int, low=1)
    depth: int = param(2, check_int, low=0)
    width: int = param(128, check_int, low=1)
    plot_points: int = param(1000, check_int, low=100)

    def full_profile(self) -> dict[str, Any]:
        """20 other seeds, 4x the warm-up (chapter 2's full profile), more dimensions, denser pictures."""
        return {"seeds": list(FULL_SEEDS), "ae_steps": 4 * self.ae_steps, "secondary_seeds": 5,
                "dims": list(FULL_DIMS), "plot_points": 3000}

    def check_relations(self) -> None:
        if self.primary_dim not in self.dims:
            raise self.invalid("primary_dim", f"it must be one of dims={self.dims}")

    def seeds_at(self, dim: int) -> list[int]:
        """The seeds run at ``dim``: all at the primary dimension, the first ``secondary_seeds`` elsewhere."""
        return self.seeds if dim == self.primary_dim else self.seeds[:self.secondary_seeds]


def work_ratio(params: Parameters) -> float:
    """How many times this run's training work the full profile does (the reproducibility page's estimate)."""
    full = params.full_profile()
    return nbk.full_profile_work_ratio(params.profile, len(full["seeds"]) / len(params.seeds),
                                       full["ae_steps"] / params.ae_steps)


# --- the data -------------------------------------------------------------------------------------

def mixtures(dims: Sequence[int]) -> dict[int, Dataset]:
    """The mixture at each input dimension (data seed 0: the same data in every chapter)."""
    return {d: gaussian_mixture(dim=d) for d in dims}


def mixture_description(datasets: dict[int, Dataset]) -> str:
    """The mixture's description, for every dimension at once."""
    d = next(iter(datasets))
    return datasets[d].description.replace(f"in {d}-D", "in D dimensions")


def data_table(datasets: dict[int, Dataset]) -> pd.DataFrame:
    """The raw data's geometry per input dimension: the reference the encoders' outputs are read against."""
    table = pd.DataFrame([{"dim": d, **embedding_geometry(ds.x, ds.labels)} for d, ds in datasets.items()])
    return table.set_index("dim").drop(columns="variance ratio")


def show_data_table(table: pd.DataFrame) -> None:
    show_table(table.round(3), digits=3, index_label="Input dim.", caption="The raw data at each input dimension.")


def plot_subsample(datasets: dict[int, Dataset], points: int) -> dict[int, np.ndarray]:
    """A fixed subsample of ``points`` rows per dimension, the same in every scatter of the chapter."""
    rng = np.random.default_rng(0)
    return {d: np.sort(rng.choice(len(ds.x), points, replace=False)) for d, ds in datasets.items()}


# --- figures ----------------------------------------------------------------------------------------

def _cluster_scatter(ax, points: np.ndarray, labels: np.ndarray) -> None:
    """Points of a plane coloured by their cluster."""
    sns.scatterplot(x=points[:, 0], y=points[:, 1], hue=labels, palette="tab10", s=5, linewidth=0, legend=False,
                    ax=ax)


def _pca_plane(fit_on: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` in the plane of the two leading principal components of ``fit_on``."""
    from sklearn.decomposition import PCA

    return PCA(2, random_state=0).fit(fit_on).transform(points)


def _paired_panels(n: int, panel_height: float):
    """A figure of two panels (one above the other) per dimension, at most three dimensions a row, and
    ``panel(i, row)``: the axes of dimension ``i``'s top (row 0) or bottom (row 1) panel."""
    n_rows, n_cols = style.grid(n)
    fig, axes = style.figure(2 * n_rows, n_cols, panel_height=panel_height, squeeze=False)
    style.hide_unused(axes[0::2], n)
    style.hide_unused(axes[1::2], n)
    return fig, lambda i, row: axes[2 * (i // n_cols) + row, i % n_cols]


def mixture_figure(datasets: dict[int, Dataset], shown: dict[int, np.ndarray]):
    """The mixture at each dimension: the data (2-D) or its PCA plane above, its t-SNE view below."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    fig, panel = _paired_panels(len(datasets), panel_height=2.2)
    for i, (d, ds) in enumerate(datasets.items()):
        top, bottom = panel(i, 0), panel(i, 1)
        x, lab = ds.x.numpy()[shown[d]], ds.labels.numpy()[shown[d]]
        _cluster_scatter(top, x if d == 2 else _pca_plane(ds.x.numpy(), x), lab)
        top.set(title=f"{d}-D: " + ("the data" if d == 2 else "PCA plane"),
                xlabel="x1" if d == 2 else "PC 1", ylabel="x2" if d == 2 else "PC 2")
        if d == 2:
            bottom.axis("off")
            bottom.text(0.5, 0.5, "2-D data:\nno embedding needed", ha="center", va="center")
            continue
        with threadpool_limits(1):
            emb = TSNE(2, perplexity=30, init="pca", random_state=0).fit_transform(x)
        _cluster_scatter(bottom, emb, lab)
        bottom.set(title=f"{d}-D: t-SNE", xlabel="t-SNE 1", ylabel="t-SNE 2")
    return fig


def encoder_figure(datasets: dict[int, Dataset], encoders: Encoders, shown: dict[int, np.ndarray], seed: int):
    """The untrained (above) and trained (below) encoder's outputs of one seed at each dimension, each panel
    on its own scale, titled with its variance ratio and modes found."""
    fig, panel = _paired_panels(len(datasets), panel_height=2.3)
    frame = encoders.frame
    for i, d in enumerate(datasets):
        lab = datasets[d].labels.numpy()[shown[d]]
        for row, name in enumerate(ENCODERS):
            z = encoders.embeddings[d, seed][name].cpu().numpy()
            ax = panel(i, row)
            _cluster_scatter(ax, _pca_plane(z, z[shown[d]]) if d > 2 else z[shown[d]], lab)
            r = frame[(frame.dim == d) & (frame.seed == seed) & (frame.encoder == name)].iloc[0]
            ax.set(title=f"{d}-D, {name}\nvariance ×{r['variance ratio']:.3g}\n{r['modes found']} modes",
                   xlabel="PC 1" if d > 2 else "z1", ylabel="PC 2" if d > 2 else "z2")
    return fig


def metrics_figure(frame: pd.DataFrame, data: pd.DataFrame, dims: Sequence[int]):
    """Untrained against trained encoder over the input dimension, the raw data's value dashed."""
    fig, axes = style.figure(2, 2, panel_height=2.2, sharex=True)
    for ax, metric in zip(axes.flat, PLOTTED):
        plots.metric_lines(ax, frame, x="dim", y=metric, hue="encoder", hue_order=list(ENCODERS), logx=True,
                           xlabel="input dimension", ylabel="")
        ax.set_title(metric[:1].upper() + metric[1:])
        if metric == "variance ratio":   # the raw data's ratio is 1 by definition
            ax.set_yscale("log")
            ax.axhline(1, ls="--", c=style.REFERENCE, lw=1)
        else:
            ax.plot(dims, data.loc[dims, metric].to_numpy(), ls="--", c=style.REFERENCE, lw=1, label="raw data")
    style.legend_from(axes[0, 1], fig, title="encoder")
    return fig


# --- the runs -------------------------------------------------------------------------------------

def base_config(params: Parameters) -> RunConfig:
    """A deferred run whose training stops one VQ step after the autoencoder warm-up."""
    return RunConfig().replace(
        model={"depth": params.depth, "width": params.width},
        train={"schedule": "deferred", "warmup_steps": params.ae_steps, "steps": params.ae_steps + 1,
               "eval_every": params.ae_steps + 1, "device": params.device},
    )


def seed_batches(params: Parameters) -> list[list[RunConfig]]:
    """The runs as seed batches (one batched computation each), the primary dimension first; batches of
    ``ceil(seeds / workers)`` seeds keep every worker busy."""
    base, chunk = base_config(params), -(-len(params.seeds) // params.workers)
    dims = [params.primary_dim] + [d for d in params.dims if d != params.primary_dim]
    return [[base.replace(data={"dim": d}, model={"latent_dim": d}, train={"seed": s})
             for s in params.seeds_at(d)[i:i + chunk]]
            for d in dims for i in range(0, len(params.seeds_at(d)), chunk)]


@dataclass
class Encoders:
    """The chapter's runs and what it measures of them: both encoders' outputs by (dim, seed), how far the
    one VQ step moved each trained encoder's Fisher ratio, and the geometry of every output (one row each)."""
    runs: list[RunResult]
    batches: int
    embeddings: dict[tuple[int, int], dict[str, torch.Tensor]]
    vq_step_moves: list[float]
    frame: pd.DataFrame


def encoder_outputs(run: RunResult, device: str, ae_steps: int) -> tuple[dict[str, torch.Tensor], float]:
    """Both encoders' outputs on the run's data, and the relative change of the trained encoder's Fisher
    ratio over the VQ step after the warm-up. Fails when the rebuilt untrained encoder is not the run's
    step-0 encoder (its outputs' total variance must match the run's first evaluation)."""
    ds = run.dataset
    x = ds.x.to(device)
    untrained = untrained_model(run.config, ds).to(device).encode(x)
    if not np.isclose(float(covariance_eigenvalues(untrained).sum()), run.evals[0]["embed_total_variance"],
                      rtol=1e-6):
        raise RuntimeError("the rebuilt untrained encoder differs from the run's step-0 encoder")
    outputs = {"untrained": untrained.cpu(), "trained": run.model.encode(x).cpu()}
    at_switch = next(e for e in run.evals if e["step"] == ae_steps)
    return outputs, abs(class_geometry(outputs["trained"], ds.labels)[2] / at_switch["cluster_separation"] - 1)


def geometry_frame(embeddings: dict[tuple[int, int], dict[str, torch.Tensor]], datasets: dict[int, Dataset],
                   data: pd.DataFrame, workers: int) -> pd.DataFrame:
    """One row per (dim, seed, encoder): :func:`vqstudy.analysis.embedding_geometry` of its outputs, the
    variance ratio taken against the raw data's total variance (``workers`` processes)."""
    keys = [(d, s, name) for (d, s), pair in embeddings.items() for name in pair]
    geometry = map_jobs(embedding_geometry, [(embeddings[d, s][name].numpy(), datasets[d].labels,
                                              data.loc[d, "total variance"]) for d, s, name in keys], workers=workers)
    return pd.DataFrame([{"dim": d, "seed": s, "encoder": name, **g} for (d, s, name), g in zip(keys, geometry)])


def run_encoders(params: Parameters, datasets: dict[int, Dataset], data: pd.DataFrame) -> Encoders:
    """Train every run (seed batches on ``params.workers`` processes) and measure both encoders of each."""
    batches = seed_batches(params)
    runs = [r for batch in map_jobs(train_seeds, [(b,) for b in batches], workers=params.workers,
                                    kwargs={"progress": False}) for r in batch]
    embeddings, moves = {}, []
    for run in runs:
        embeddings[run.config.data.dim, run.config.train.seed], move = encoder_outputs(run, params.device,
                                                                                       params.ae_steps)
        moves.append(move)
    return Encoders(runs, len(batches), embeddings, moves, geometry_frame(embeddings, datasets, data, params.workers))


def run_summary(encoders: Encoders, params: Parameters) -> str:
    """What ran, and how far the measured trained encoder is from the end of its warm-up."""
    return (f"{len(encoders.runs)} runs ({len(params.seeds)} seeds at {params.primary_dim}-D, {params.secondary_seeds} "
            f"at the other dimensions) in {encoders.batches} seed batches, statuses: "
            f"{sorted({r.status for r in encoders.runs})}\n"
            f"largest relative change of the trained encoder's Fisher ratio over the one VQ step: "
            f"{max(encoders.vq_step_moves):.2%}")


def secondary_seed_count(params: Parameters) -> int:
    """How many seeds ran at the dimensions other than the primary one."""
    return min(params.secondary_seeds, len(params.seeds))


def show_encoder_table(frame: pd.DataFrame, params: Parameters) -> None:
    """Mean ± 95% interval of each measure per (dim, encoder)."""
    show_table(summary_table(frame, by=["dim", "encoder"], metrics=METRICS), index_label="Dim., encoder",
               caption=f"Mean ± 95% interval over the seeds ({len(params.seeds)} at {params.primary_dim}-D, "
               f"{secondary_seed_count(params)} elsewhere).")


# --- the claim, the results file and the prose ----------------------------------------------------

def encoder_means(frame: pd.DataFrame) -> pd.DataFrame:
    """Each measure's mean over the seeds, indexed by (encoder, dim)."""
    return frame.groupby(["encoder", "dim"])[METRICS].mean()


def means_record(means: pd.DataFrame) -> dict[str, dict[str, float]]:
    """:func:`encoder_means` as the results file records it: ``"<encoder>, dim <d>"`` -> measures."""
    return {f"{enc}, dim {d}": row for (enc, d), row in means.to_dict(orient="index").items()}


def mode_counts(frame: pd.DataFrame, dim: int) -> dict[str, dict[int, float]]:
    """Modes found by seed at ``dim``, per encoder: the two arms of C3's primary test."""
    return {arm: by_seed(frame, "modes found", dim=dim, encoder=arm) for arm in ENCODERS}


def claim_values(frame: pd.DataFrame, primary_dim: int) -> dict[str, tuple[dict[int, float], dict[int, float]]]:
    """C3's primary test: modes found by seed, untrained (treatment) against trained (control)."""
    modes = mode_counts(frame, primary_dim)
    return {"C3-modes": (modes["untrained"], modes["trained"])}


def claim_evidence(means: pd.DataFrame, params: Parameters) -> str:
    """C3's secondary measurements in words (shown beside the verdict, never voting)."""
    at = lambda metric, dims: contrast(means, metric, ENCODERS, dims, "at {}-D")  # noqa: E731
    primary, others = [params.primary_dim], [d for d in params.dims if d != params.primary_dim]
    return (f"Secondary, untrained against trained: variance ratio {at('variance ratio', primary)} (a shrinkage "
            f"by construction of the default init); Fisher ratio {at('Fisher ratio', primary)}; effective dim "
            f"{at('effective dim', primary)}; modes found {at('modes found', others)}.")


def claim_numbers(means: pd.DataFrame, primary_dim: int) -> dict[str, Any]:
    return {"primary_dim": primary_dim, "means": means_record(means)}


def results_numbers(params: Parameters, data: pd.DataFrame, means: pd.DataFrame) -> dict[str, Any]:
    """The numbers of the chapter's results file: the data's and the encoders' geometry, the run config."""
    return {"full_profile_work_ratio": work_ratio(params), "data": data.to_dict(orient="index"),
            "encoders": means_record(means), "config": base_config(params).to_dict()}


def chapter_text(verdict: Verdict, encoders: Encoders, data: pd.DataFrame, params: Parameters) -> dict[str, Any]:
    """Every number and verdict word the chapter's prose states, from this execution (to glue)."""
    test, dims, means = verdict.primary[0], params.dims, encoder_means(encoders.frame)
    modes = mode_counts(encoders.frame, params.primary_dim)
    arms = lambda metric: contrast(means, metric, ENCODERS, dims, "{}-D")  # noqa: E731
    return {
        "c3_verdict": verdict.verdict, "c3_effect": test["effect"], "c3_low": test["low"], "c3_high": test["high"],
        "c3_seeds": len(test["seeds"]), "c3_stability": f"{verdict.stability:.2f}", "c3_dim": params.primary_dim,
        "c3_modes_untrained": float(np.mean(list(modes["untrained"].values()))),
        "c3_modes_trained": float(np.mean(list(modes["trained"].values()))),
        "c3_fewer_share": f"{np.mean([modes['untrained'][s] < modes['trained'][s] for s in modes['trained']]):.0%}",
        "c1_data_modes": "; ".join(f"{data.loc[d, 'modes found']:.0f} in {d}-D (Fisher ratio "
                                   f"{data.loc[d, 'Fisher ratio']:.3g})" for d in dims),
        "c3_variance": arms("variance ratio"), "c3_fisher": arms("Fisher ratio"), "c3_effdim": arms("effective dim"),
        "c3_pr": arms("participation ratio"), "c3_modes_by_dim": arms("modes found"),
        "c3_fewer_dims": ", ".join(f"{d}-D" for d in dims if means.loc[("untrained", d), "modes found"]
                                   < means.loc[("trained", d), "modes found"]) or "none",
        "c3_vq_step": f"{max(encoders.vq_step_moves):.2%}", "c3_secondary_seeds": secondary_seed_count(params),
    }
