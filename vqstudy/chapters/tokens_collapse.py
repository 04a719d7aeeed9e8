"""Chapter 2's experiment: with joint training, the codebook initialization decides how much of it is used.

A VQ autoencoder that quantizes from its first step can only move the codes its encoder's outputs land
near; the codes that start elsewhere never become nearest to anything and stay dead. The chapter trains
the same MLP autoencoder on the 10-cluster Gaussian mixture with four codebook initializations on ten paired
seeds: a small normal and a uniform(1/K) random init (claim C1: far fewer codes used), k-means on the
untrained encoder (the paper's baseline; claim C2: the codes bunch in a narrow region), and deferred
quantization (k-means on the trained encoder after a plain-autoencoder warm-up), the healthy control.
Around the primary comparison: a map of init scale x codebook size (descriptive), the C2 comparison at
other sizes (secondary), and the reconstruction side of the shrunk codebook against trivial reconstructors.

Notebook: ``notebooks/02_tokens_collapse.ipynb``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .. import notebook as nbk
from .. import plots, style
from ..analysis import cluster_mean_r2, kmeans_r2
from ..claims import DEFERRED_SYNTH, SHRUNK_SYNTH
from ..config import RunConfig
from ..data import Dataset
from ..notebook import check_floats, check_int, check_ints, param
from ..results import Verdict
from ..sweep import sweep
from ..tables import by_seed, results_frame, summary_table
from ..train import RunResult, train
from .common import mixture_config

NORMAL = "normal(1e-3), joint"
UNIFORM = "uniform(1/K), joint"
SHRUNK, HEALTHY = SHRUNK_SYNTH, DEFERRED_SYNTH
ARMS = (NORMAL, UNIFORM, SHRUNK, HEALTHY)   # the primary comparison's arms, in the order they are shown
KMEANS_ROW, DEFERRED_ROW = "k-means untrained", "deferred"   # the map's reference rows
IDEAL_MODE_ENTROPY = np.log(10)   # the codes spread evenly over the mixture's 10 clusters

METRICS = ["utilization", "perplexity", "codebook_centered_cosine_spread", "codebook_cosine_spread",
           "codebook_relative_spread", "codebook_euclidean_spread", "mode_entropy", "clusters_covered",
           "quantization_error", "recon_error"]
C2_METRICS = ["codebook_centered_cosine_spread", "codebook_relative_spread", "mode_entropy", "clusters_covered"]
METRIC_PANELS = [("utilization", "Utilization (share of K)"), ("perplexity", "Perplexity (codes in use)"),
                 ("codebook_centered_cosine_spread", "Centred cosine spread"),
                 ("mode_entropy", "Mode entropy H (nats)"), ("quantization_error", "Quantization error Q"),
                 ("recon_error", "Reconstruction MSE")]
PPL_DROP, MSE_RISE = "perplexity drop (healthy/shrunk)", "MSE rise (shrunk/healthy)"
R2_SHRUNK, R2_HEALTHY = "R^2 shrunk", "R^2 healthy"
CLUSTER_MEAN = "cluster-mean reconstructor"


@dataclass(frozen=True)
class Parameters(nbk.RunParameters):
    """Chapter 2's parameters: the primary comparison's seeds, budget and size, the map's grid, the C2 seeds."""
    steps: int = param(1500, check_int, low=10)
    codebook_size: int = param(64, check_int, low=2)
    data_dim: int = param(8, check_int, low=4)
    init_scales: list[float] = param([0.001, 0.1, 1.0], check_floats)
    map_codebook_sizes: list[int] = param([10, 160], check_ints, low=2)
    map_seeds: list[int] = param([0], check_ints, low=0)
    c2_seeds: list[int] = param([0, 1, 2], check_ints, low=0)

    def full_profile(self) -> dict[str, Any]:
        """The same models: a disjoint set of seeds, four times the steps, a finer map."""
        return {"seeds": list(range(10, 30)), "steps": 4 * self.steps, "map_seeds": list(range(10, 15)),
                "c2_seeds": list(range(10, 15)), "init_scales": [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0],
                "map_codebook_sizes": [10, 20, 40, 80, 160, 320, 640]}


def work_ratio(params: Parameters) -> float:
    """How many times ``params``' training work the full profile does (seeds x steps), for the
    reproducibility page's estimate; 1.0 for the full profile itself."""
    full = Parameters.from_notebook({"profile": "full", "steps": params.steps})
    return nbk.full_profile_work_ratio(params.profile, len(full.seeds) / len(params.seeds), full.steps / params.steps)


# --- the runs ----------------------------------------------------------------------------------------

def base_config(params: Parameters) -> RunConfig:
    """The one configuration every condition changes: only its codebook init or its schedule differ."""
    return mixture_config(params.data_dim, params.codebook_size, params.steps, params.device)


def deferred(steps: int) -> dict[str, Any]:
    """Deferred quantization: half the budget as a plain autoencoder, then k-means on the trained encoder."""
    return {"train": {"schedule": "deferred", "warmup_steps": steps // 2}}


def conditions(steps: int) -> dict[str, dict[str, Any]]:
    """The four arms of the primary comparison (:data:`ARMS`), by label, as changes of the base config."""
    return {NORMAL: {"quantizer": {"init": "normal", "init_scale": 1e-3}},
            UNIFORM: {"quantizer": {"init": "uniform"}},
            SHRUNK: {"quantizer": {"init": "kmeans"}},
            HEALTHY: deferred(steps)}


def map_rows(init_scales: list[float], steps: int) -> dict[str, dict[str, Any]]:
    """The triggering map's rows: a normal init of each scale, k-means on the untrained encoder, deferred."""
    rows = {f"normal({s:g})": {"quantizer": {"init": "normal", "init_scale": s}} for s in init_scales}
    return rows | {KMEANS_ROW: {}, DEFERRED_ROW: deferred(steps)}


def main_setting(params: Parameters) -> str:
    """The primary comparison's size, as the C2 table names it."""
    return f"latent {params.data_dim}, encoder 2 x 128, K = {params.codebook_size}"


def c2_settings(params: Parameters) -> dict[str, dict[str, Any]]:
    """C2 beyond the main setting: a smaller latent and encoder, and K near the number of clusters."""
    return {f"latent 4, encoder 2 x 64, K = {params.codebook_size}": {"model": {"latent_dim": 4, "width": 64}},
            f"latent {params.data_dim}, encoder 2 x 128, K = 10": {"quantizer": {"codebook_size": 10}}}


def seeded(config: RunConfig, seed: int) -> RunConfig:
    """``config`` trained from ``seed`` (network init and batches): seed s of two arms makes a pair."""
    return config.replace(train={"seed": seed})


@dataclass(frozen=True)
class Design:
    """Every run the chapter trains, each list beside the labels its runs are shown under."""
    base: RunConfig
    configs: list[RunConfig]
    labels: list[str]
    map_configs: list[RunConfig]
    map_labels: list[str]
    c2_configs: list[RunConfig]
    c2_labels: list[tuple[str, str]]   # (setting, arm)


def design(params: Parameters) -> Design:
    """The runs of the primary comparison (every arm on the same seeds, paired), the map and the C2 settings."""
    base, arms = base_config(params), conditions(params.steps)
    rows, settings = map_rows(params.init_scales, params.steps), c2_settings(params)
    ks = params.map_codebook_sizes
    return Design(
        base=base,
        configs=[seeded(base.replace(**change), seed) for change in arms.values() for seed in params.seeds],
        labels=[name for name in arms for seed in params.seeds],
        map_configs=[seeded(base.replace(quantizer={"codebook_size": k}).replace(**change), seed)
                     for k in ks for change in rows.values() for seed in params.map_seeds],
        map_labels=[name for k in ks for name in rows for seed in params.map_seeds],
        c2_configs=[seeded(base.replace(**setting).replace(**arms[arm]), seed)
                    for setting in settings.values() for arm in (SHRUNK, HEALTHY) for seed in params.c2_seeds],
        c2_labels=[(name, arm) for name in settings for arm in (SHRUNK, HEALTHY) for seed in params.c2_seeds])


@dataclass(frozen=True)
class Runs:
    """The trained runs, in the order of the design's lists."""
    primary: list[RunResult]
    map: list[RunResult]
    c2: list[RunResult]


def run(design: Design, workers: int) -> Runs:
    """Train every run of the design in one sweep (a config in two lists is trained once)."""
    every = sweep(design.configs + design.map_configs + design.c2_configs, workers=workers, progress=False)
    n, n_c2 = len(design.configs), len(design.c2_configs)
    return Runs(every[:n], every[n:-n_c2], every[-n_c2:])


def setup_text(params: Parameters, design: Design, data: Dataset) -> str:
    """The data and the budget of every run, as the set-up cell prints them."""
    base = design.base
    return (f"{data.description}\nK = {params.codebook_size}, {params.steps} steps, batch {base.train.batch_size}, "
            f"Adam lr {base.train.lr}, beta {base.quantizer.beta}, seeds {params.seeds}")


def runs_text(design: Design, runs: Runs) -> str:
    """How many runs each part trained, and their statuses."""
    statuses = sorted({r.status for r in runs.primary + runs.map + runs.c2})
    return (f"{len(design.configs)} runs in the primary comparison, {len(design.map_configs)} in the map, "
            f"{len(design.c2_configs)} at other sizes (a config in two lists is trained once); statuses: {statuses}")


# --- what each initialization does to the codebook ---------------------------------------------------

def primary_frame(design: Design, runs: Runs) -> pd.DataFrame:
    """One row per run of the primary comparison: its arm, seed and final metrics."""
    return results_frame(runs.primary, design.labels)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean ± 95% interval of each metric per arm, in the arms' order."""
    return summary_table(df, metrics=METRICS).loc[list(ARMS)].drop(columns="runs")


def condition_means(df: pd.DataFrame) -> pd.DataFrame:
    """The mean of each metric per arm (the claims' evidence and the results file)."""
    return df.groupby("condition")[METRICS].mean()


def metrics_figure(df: pd.DataFrame, codebook_size: int) -> Figure:
    """Six metrics per arm, bars numbered in the arms' order, with K and the ideal mode entropy marked."""
    order = list(ARMS)
    fig, axes = style.figure(2, 3, panel_height=1.9, sharex=True)
    for ax, (metric, title) in zip(axes.flat, METRIC_PANELS):
        plots.metric_by_condition(ax, df, metric, order=order, ylabel="", title=title)
    axes[0, 1].axhline(codebook_size, ls="--", c=style.REFERENCE, lw=1)
    axes[1, 0].axhline(IDEAL_MODE_ENTROPY, ls="--", c=style.REFERENCE, lw=1)
    handles, names = style.condition_handles(order, numbered=True)
    ref, ref_name = style.reference_handle("K (perplexity) and log 10 (mode entropy)")
    style.shared_legend(fig, handles + [ref], names + [ref_name], ncol=2)
    return fig


def retrain_first_seed(design: Design, df: pd.DataFrame) -> dict[str, RunResult]:
    """The first seed of each arm trained again in this process, to draw its trained model; fails unless
    each reproduces the sweep's run exactly (the chapter's runs are deterministic)."""
    seed = design.configs[0].train.seed
    first = {name: train(cfg) for cfg, name in zip(design.configs, design.labels) if cfg.train.seed == seed}
    for name, result in first.items():
        swept = df[(df.condition == name) & (df.seed == seed)].iloc[0]
        if result.final["perplexity"] != swept["perplexity"]:
            raise RuntimeError("a re-run differs from the sweep: not deterministic")
    return first


def codes_figure(first: Mapping[str, RunResult], device: str) -> Figure:
    """Codes against the trained embeddings of each arm's first seed (the paper's Figure 3)."""
    fig, axes = style.figure(*style.grid(len(first)), panel_height=2.5)
    for ax, (name, result) in zip(axes.flat, first.items()):
        z = result.model.encode(result.dataset.x.to(device))
        idx = result.model.quantizer.assign(z)
        plots.codes_vs_embeddings(ax, z, result.model.quantizer.codebook, result.dataset.labels, idx, legend=False,
                                  title=style.wrap(name) + f"\nperplexity {result.final['perplexity']:.1f}")
        ax.set(xlabel="PC 1", ylabel="PC 2")
    style.hide_unused(axes, len(first))
    style.shared_legend(fig, *plots.code_handles())
    return fig


def usage_figure(first: Mapping[str, RunResult], codebook_size: int, device: str) -> Figure:
    """Share of assignments per code, codes sorted by usage, for each arm's first seed."""
    fig, ax = style.figure(1, 1, panel_height=2.8)
    for name, result in first.items():
        z = result.model.encode(result.dataset.x.to(device))
        plots.usage_curve(ax, result.model.quantizer.assign(z), codebook_size, name)
    style.legend_from(ax, fig, ncol=2)
    return fig


# --- the triggering map ------------------------------------------------------------------------------

def map_frame(design: Design, runs: Runs) -> pd.DataFrame:
    """One row per run of the map: its init, K, seed and final metrics."""
    frame = results_frame(runs.map, design.map_labels)
    frame["K"] = [c.quantizer.codebook_size for c in design.map_configs]
    return frame


def map_table(mdf: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The mean of ``metric`` over the map's seeds, by init (rows, in the map's order) and K (columns)."""
    return mdf.pivot_table(index="condition", columns="K", values=metric, aggfunc="mean", sort=False)


def map_figure(mdf: pd.DataFrame) -> Figure:
    """Utilization and perplexity / K over init x K, on one colour scale (shares of the codebook)."""
    fig, axes = style.figure(1, 2, panel_height=2.9, sharey=True)
    plots.heatmap(axes[0], map_table(mdf, "utilization"), "Utilization", vmin=0, vmax=1, cbar=False)
    ppl = map_table(mdf, "perplexity")
    plots.heatmap(axes[1], ppl.div(ppl.columns.to_numpy(), axis=1), "Perplexity / K", vmin=0, vmax=1, cbar=False)
    axes[0].set(ylabel="", xlabel="codebook size K")
    axes[1].set(ylabel="", xlabel="codebook size K")
    fig.colorbar(axes[1].collections[0], ax=axes, shrink=0.9, label="share of the codebook")
    return fig


# --- C2 at other sizes -------------------------------------------------------------------------------

def c2_table(df: pd.DataFrame, design: Design, runs: Runs, params: Parameters) -> pd.DataFrame:
    """The C2 measures' means per (setting, arm): the main setting's shrunk and deferred arms, then the others."""
    others = results_frame(runs.c2, [arm for _, arm in design.c2_labels]).assign(
        setting=[name for name, _ in design.c2_labels])
    main = df[df.condition.isin([SHRUNK, HEALTHY])].assign(setting=main_setting(params))
    return pd.concat([main, others]).pivot_table(index=["setting", "condition"], values=C2_METRICS, aggfunc="mean",
                                                 sort=False)[C2_METRICS]


def c2_ratio(table: pd.DataFrame) -> pd.DataFrame:
    """Shrunk / deferred of each C2 measure's mean, per setting."""
    return table.xs(SHRUNK, level="condition") / table.xs(HEALTHY, level="condition")


# --- the reconstruction side -------------------------------------------------------------------------

def reconstruction_by_seed(df: pd.DataFrame, data: Dataset) -> pd.DataFrame:
    """Seed by seed, shrunk against healthy: the perplexity drop, the MSE rise, and each one's R^2."""
    variance = float(data.x.var(0).mean())
    pair = _paired(df)
    return pd.DataFrame({
        PPL_DROP: pair["perplexity"][HEALTHY] / pair["perplexity"][SHRUNK],
        MSE_RISE: pair["recon_error"][SHRUNK] / pair["recon_error"][HEALTHY],
        R2_SHRUNK: 1 - pair["recon_error"][SHRUNK] / variance,
        R2_HEALTHY: 1 - pair["recon_error"][HEALTHY] / variance,
    })


def shrunk_codes(df: pd.DataFrame) -> int:
    """The shrunk arm's mean number of codes used, rounded: what its trivial k-means baseline gets."""
    return int(round(_paired(df)["used_codes"][SHRUNK].mean()))


def _paired(df: pd.DataFrame) -> pd.DataFrame:
    """Per seed (rows), each arm's perplexity, reconstruction MSE and codes used (columns: metric, arm)."""
    return df.pivot_table(index="seed", columns="condition", values=["perplexity", "recon_error", "used_codes"])


def trivial_baselines(data: Dataset, n_codes: int) -> dict[str, float]:
    """R^2 of two reconstructors that learn nothing: each point's cluster mean, k-means with ``n_codes``."""
    return {CLUSTER_MEAN: cluster_mean_r2(data.x, data.labels),
            f"k-means, {n_codes} codes, raw data": kmeans_r2(data.x, n_codes)}


def r2_table(by_seed_frame: pd.DataFrame, baselines: Mapping[str, float]) -> pd.DataFrame:
    """The tokenizers' mean R^2 beside the trivial baselines'."""
    return pd.DataFrame({"R^2": {"shrunk tokenizer (mean)": by_seed_frame[R2_SHRUNK].mean(),
                                 "deferred tokenizer (mean)": by_seed_frame[R2_HEALTHY].mean(), **baselines}})


# --- claims, results file, prose ---------------------------------------------------------------------

def claim_inputs(df: pd.DataFrame, c2: pd.DataFrame, codebook_size: int) -> dict[str, dict[str, Any]]:
    """Per claim, what :meth:`vqstudy.notebook.Claims.judge` takes: the primary tests' paired values by
    seed (``values``), and the secondary ``evidence`` and ``numbers`` (shown, never voting).
    ``c2``: :func:`c2_table`."""
    m = condition_means(df)
    return {"C1": c1_inputs(df, m, codebook_size), "C2": c2_inputs(df, m, c2_ratio(c2))}


def _arms(df: pd.DataFrame, metric: str, treatment: str, control: str) -> tuple[dict[int, float], dict[int, float]]:
    return by_seed(df, metric, condition=treatment), by_seed(df, metric, condition=control)


def c1_inputs(df: pd.DataFrame, m: pd.DataFrame, codebook_size: int) -> dict[str, Any]:
    """C1: each small random init's perplexity against deferred quantization's; utilization as evidence."""
    used = {arm: f"{m.loc[arm, 'utilization']:.0%}" for arm in (NORMAL, UNIFORM, HEALTHY)}
    return {"values": {"C1-normal": _arms(df, "perplexity", NORMAL, HEALTHY),
                       "C1-uniform": _arms(df, "perplexity", UNIFORM, HEALTHY)},
            "evidence": f"Secondary: utilization {used[NORMAL]} (normal), {used[UNIFORM]} (uniform) vs "
                        f"{used[HEALTHY]} (deferred); K = {codebook_size}.",
            "numbers": {arm: {k: m.loc[arm, k] for k in ("perplexity", "utilization")}
                        for arm in (NORMAL, UNIFORM, HEALTHY)}}


def c2_inputs(df: pd.DataFrame, m: pd.DataFrame, ratio: pd.DataFrame) -> dict[str, Any]:
    """C2: the shrunk codebook's centred cosine spread against deferred's; the other spreads, the mode
    entropy, the clusters covered and the ratio at other sizes (``ratio``: :func:`c2_ratio`) as evidence."""
    spread = "codebook_centered_cosine_spread"
    return {"values": {"C2-cosine": _arms(df, spread, SHRUNK, HEALTHY)},
            "evidence": "Secondary, shrunk vs deferred: "
                        + _versus(m, "uncentred cosine spread", "codebook_cosine_spread") + ", "
                        + _versus(m, "relative spread", "codebook_relative_spread") + ", "
                        + _versus(m, "mode entropy", "mode_entropy") + ", "
                        + _versus(m, "clusters covered", "clusters_covered", ".1f")
                        + "; centred cosine spread, ratio of the arms' means by setting: "
                        + ", ".join(f"{r:.2f} ({s})" for s, r in ratio[spread].items()) + ".",
            "numbers": {"secondary_means": {arm: m.loc[arm, C2_METRICS].to_dict() for arm in (SHRUNK, HEALTHY)},
                        "other_sizes_ratio": ratio.to_dict(orient="index")}}


def _versus(m: pd.DataFrame, name: str, metric: str, fmt: str = ".2f") -> str:
    """'name shrunk vs healthy' of a metric's arm means."""
    return f"{name} {m.loc[SHRUNK, metric]:{fmt}} vs {m.loc[HEALTHY, metric]:{fmt}}"


def results_numbers(params: Parameters, design: Design, df: pd.DataFrame, util: pd.DataFrame, c2: pd.DataFrame,
                    by_seed_frame: pd.DataFrame, baselines: Mapping[str, float]) -> dict[str, Any]:
    """The numbers the results file records beside the verdicts."""
    return {"full_profile_work_ratio": work_ratio(params),
            "summary": condition_means(df).to_dict(orient="index"),
            "map_utilization": {str(k): v for k, v in util.to_dict().items()},
            "c2_other_sizes": {f"{s} | {a}": v for (s, a), v in c2.to_dict(orient="index").items()},
            "reconstruction_secondary": {"mse_rise": by_seed_frame[MSE_RISE].mean(),
                                         "perplexity_drop": by_seed_frame[PPL_DROP].mean(),
                                         "r2_shrunk": by_seed_frame[R2_SHRUNK].mean(),
                                         "r2_deferred": by_seed_frame[R2_HEALTHY].mean(),
                                         "r2_baselines": dict(baselines)},
            "config": design.base.to_dict()}


def chapter_text(params: Parameters, verdicts: Mapping[str, Verdict], df: pd.DataFrame, util: pd.DataFrame,
                 c2: pd.DataFrame, by_seed_frame: pd.DataFrame, baselines: Mapping[str, float]) -> dict[str, str]:
    """Every number and verdict word the chapter's prose states, as text from this execution (glued), in the
    order of the prose's sections: the verdicts and primary tests, the arms' means, C2 at other sizes, the
    map, the reconstruction side."""
    return (verdict_texts(params, verdicts) | means_texts(condition_means(df)) | c2_texts(params, c2)
            | map_texts(params, util) | reconstruction_texts(by_seed_frame, baselines, shrunk_codes(df)))


def verdict_texts(params: Parameters, verdicts: Mapping[str, Verdict]) -> dict[str, str]:
    """C1's and C2's verdicts, stabilities, and primary effects with their intervals and thresholds."""
    c1, c2 = verdicts["C1"], verdicts["C2"]
    t = {r["key"]: r for v in (c1, c2) for r in v.primary}
    ci = lambda r: f"{r['low']:.2f}–{r['high']:.2f}"  # noqa: E731
    return {
        "c1_verdict": c1.verdict, "c1_stability": f"{c1.stability:.2f}", "c2_verdict": c2.verdict,
        "c2_stability": f"{c2.stability:.2f}", "n_seeds": str(len(params.seeds)), "K": str(params.codebook_size),
        "c1_normal": f"{t['C1-normal']['effect']:.2f}", "c1_normal_ci": ci(t["C1-normal"]),
        "c1_uniform": f"{t['C1-uniform']['effect']:.2f}", "c1_uniform_ci": ci(t["C1-uniform"]),
        "c1_threshold": f"{t['C1-normal']['threshold']:g}", "c2_threshold": f"{t['C2-cosine']['threshold']:g}",
        "c2_ratio": f"{t['C2-cosine']['effect']:.2f}", "c2_ci": ci(t["C2-cosine"]),
    }


def means_texts(m: pd.DataFrame) -> dict[str, str]:
    """The arms' mean perplexity and utilization, and the shrunk and healthy arms' secondary C2 measures."""
    arms = {"normal": NORMAL, "uniform": UNIFORM, "healthy": HEALTHY, "shrunk": SHRUNK}
    texts = {f"ppl_{name}": f"{m.loc[arm, 'perplexity']:.1f}" for name, arm in arms.items()}
    texts |= {f"util_{name}": f"{m.loc[arm, 'utilization']:.0%}" for name, arm in arms.items()}
    for key, metric in (("cos", "codebook_cosine_spread"), ("ccos", "codebook_centered_cosine_spread"),
                        ("rel", "codebook_relative_spread"), ("h", "mode_entropy")):
        texts |= {f"{key}_shrunk": f"{m.loc[SHRUNK, metric]:.2f}", f"{key}_healthy": f"{m.loc[HEALTHY, metric]:.2f}"}
    texts["h_ideal"] = f"{IDEAL_MODE_ENTROPY:.2f}"
    return texts | {"cov_shrunk": f"{m.loc[SHRUNK, 'clusters_covered']:.1f}",
                    "cov_healthy": f"{m.loc[HEALTHY, 'clusters_covered']:.1f}"}


def c2_texts(params: Parameters, c2: pd.DataFrame) -> dict[str, str]:
    """The C2 comparison at the two other sizes: the centred cosine ratio and the arms' mode entropies."""
    small, near = list(c2_settings(params))
    ratio = c2_ratio(c2)["codebook_centered_cosine_spread"]
    h = lambda setting: (f"{c2.loc[(setting, SHRUNK), 'mode_entropy']:.2f} vs "  # noqa: E731
                         f"{c2.loc[(setting, HEALTHY), 'mode_entropy']:.2f}")
    return {"c2_small_setting": small, "c2_near_setting": near, "c2_seeds": str(len(params.c2_seeds)),
            "c2_small_ratio": f"{ratio.loc[small]:.2f}", "c2_near_ratio": f"{ratio.loc[near]:.2f}",
            "c2_small_h": h(small), "c2_near_h": h(near)}


def map_texts(params: Parameters, util: pd.DataFrame) -> dict[str, str]:
    """Utilization at the map's smallest and largest K: the smallest normal init's, k-means', deferred's."""
    kmin, kmax = min(params.map_codebook_sizes), max(params.map_codebook_sizes)
    smallest = f"normal({min(params.init_scales):g})"
    return {"map_kmin": str(kmin), "map_kmax": str(kmax), "map_smallest": smallest,
            "map_util_kmin": f"{util.loc[smallest, kmin]:.0%}", "map_util_kmax": f"{util.loc[smallest, kmax]:.0%}",
            "map_util_kmeans_kmax": f"{util.loc[KMEANS_ROW, kmax]:.0%}",
            "map_util_deferred_kmax": f"{util.loc[DEFERRED_ROW, kmax]:.0%}"}


def reconstruction_texts(by_seed_frame: pd.DataFrame, baselines: Mapping[str, float], n_codes: int) -> dict[str, str]:
    """The shrunk tokenizer's MSE rise and perplexity drop, and the R^2 of the tokenizers and the baselines."""
    mean = {column: by_seed_frame[column].mean() for column in by_seed_frame}
    return {"mse_rise": f"{mean[MSE_RISE]:.2f}", "ppl_drop": f"{mean[PPL_DROP]:.2f}",
            "r2_shrunk": f"{mean[R2_SHRUNK]:.3f}", "r2_healthy": f"{mean[R2_HEALTHY]:.3f}",
            "r2_cluster_mean": f"{baselines[CLUSTER_MEAN]:.3f}",
            "r2_kmeans": f"{list(baselines.values())[1]:.3f}", "shrunk_codes": str(n_codes)}
