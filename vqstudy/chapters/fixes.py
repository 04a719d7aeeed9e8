"""Chapter 4's experiment: the remedies for a collapsed codebook, side by side at the same step budget.

A jointly trained VQ autoencoder on chapter 2's Gaussian mixture collapses: few codes in use, the codebook
bunched in a small region. The chapter asks which remedy restores the codebook and what each costs in
reconstruction, with the same data, model, K and optimizer steps for every condition (a deferred run spends
its warm-up out of that budget), so that the remedies differ in one thing only.

Claim C8 (deferred quantization fixes the collapse and keeps reconstruction) is judged by its two
pre-registered primary tests against the paper's collapsed baseline (k-means on the untrained encoder,
joint training) on every seed. Everything else is secondary and never votes: a small random
initialization as a second collapsed start, the warm-up length, a warm-up that keeps the old codebook (to
separate the warm-up from the k-means re-initialization), a larger model, dead-code restart, an EMA
codebook, and both together.

Notebook: ``notebooks/04_fixes.ipynb``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import notebook as nbk
from .. import plots, style
from ..claims import MIN_SEEDS, paired_effect
from ..config import RunConfig, schedule_change
from ..data import gaussian_mixture
from ..notebook import check_fraction, check_fractions, check_int, check_ints, check_positive, param
from ..results import Verdict
from ..sweep import sweep
from ..tables import by_seed, fmt_effect, results_frame, show_table, summary_table
from .common import mixture_config

# The conditions by short key (the keys of the glued prose), in the order of the table and the figure;
# "defer", "keep" and "larger" are named from the parameters (see :func:`labels`).
KEYS = ("km", "normal", "defer", "keep", "larger", "restart", "ema", "er_km", "er_n")
FIXED_LABELS = {"km": "k-means joint (baseline)", "normal": "normal(1e-3) joint",
                "restart": "restart, k-means init", "ema": "EMA, k-means init",
                "er_km": "EMA + restart, k-means init", "er_n": "EMA + restart, normal init"}
FIXES = {"keep": "a warm-up that keeps the k-means codebook", "larger": "a larger model",
         "restart": "dead-code restart alone", "ema": "an EMA codebook alone",
         "er_km": "EMA + restart (k-means start)", "er_n": "EMA + restart (normal start)"}   # in the prose's words
REINIT, KEEP = "re-init at switch", "keep k-means codebook"   # the warm-up sweep's two variants
METRICS = ["utilization", "perplexity", "codebook_euclidean_spread", "mode_entropy", "clusters_covered",
           "quantization_error", "recon_error", "used_bits"]
SWEEP_METRICS = ["utilization", "perplexity", "codebook_euclidean_spread", "recon_error"]
PANELS = [("utilization", "Utilization (share of K)"), ("perplexity", "Perplexity (codes in use)"),
          ("codebook_euclidean_spread", "Codebook spread (L2)"), ("mode_entropy", "Mode entropy H (nats)"),
          ("clusters_covered", "Data clusters covered"), ("recon_error", "Reconstruction MSE (log)")]
SWEEP_PANELS = [("perplexity", "Perplexity"), ("codebook_euclidean_spread", "Codebook spread (L2)"),
                ("recon_error", "Reconstruction MSE")]
N_CLUSTERS = 10   # of the mixture: log 10 is the ideal mode entropy


@dataclass(frozen=True)
class Parameters(nbk.RunParameters):
    """Chapter 4's parameters: the seeds, the shared budget and K, the warm-ups, the larger model and the
    settings of the common baselines."""
    seeds: list[int] = param(list(range(10)), check_ints, low=0, min_len=MIN_SEEDS)
    secondary_seeds: int = param(3, check_int, low=2)
    steps: int = param(1500, check_int, low=10)
    codebook_size: int = param(64, check_int, low=2)
    data_dim: int = param(8, check_int, low=2)
    warmup_fractions: list[float] = param([0.125, 0.5, 0.75], check_fractions)
    main_fraction: float = param(0.5, check_fraction)
    larger_depth: int = param(3, check_int, low=0)
    larger_width: int = param(192, check_int, low=1)
    restart_threshold: float = param(1.0, check_positive)
    restart_every: int = param(100, check_int)
    ema_decay: float = param(0.99, check_fraction)

    def full_profile(self) -> dict[str, Any]:
        """Seeds disjoint from the quick profile's, longer training, a finer warm-up sweep, a larger model."""
        return {"seeds": list(range(10, 30)), "secondary_seeds": 10, "steps": 4 * self.steps,
                "warmup_fractions": [0.0625, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875],
                "larger_depth": 4, "larger_width": 256}

    def check_relations(self) -> None:
        """The secondary seeds are some of the seeds, the primary warm-up is one of the sweep's, and every
        warm-up leaves both an unquantized and a quantized phase."""
        if self.secondary_seeds > len(self.seeds):
            raise self.invalid("secondary_seeds", f"at most len(seeds) = {len(self.seeds)}")
        if self.main_fraction not in self.warmup_fractions:
            raise self.invalid("main_fraction", f"it must be one of warmup_fractions={self.warmup_fractions!r}")
        for f in self.warmup_fractions:
            if not 0 < round(f * self.steps) < self.steps:
                raise self.invalid("warmup_fractions", f"{f!r} of steps={self.steps} leaves no warm-up or no "
                                                       "quantized training")

    @property
    def few(self) -> list[int]:
        """The seeds of the secondary conditions: the first of ``seeds``, so every comparison stays paired."""
        return self.seeds[:self.secondary_seeds]


def work_ratio(p: Parameters) -> float:
    """How many times the quick profile's training work the full profile does (seeds times steps)."""
    preset = p.full_profile()
    return nbk.full_profile_work_ratio(p.profile, len(preset["seeds"]) / len(p.seeds), preset["steps"] / p.steps)


# --- the runs --------------------------------------------------------------------------------------

def labels(p: Parameters) -> dict[str, str]:
    """Each condition's label by its short key, in the order of the table and the figure."""
    named = {"defer": f"deferred {p.main_fraction:g}, re-init",
             "keep": f"deferred {p.main_fraction:g}, keep k-means cb",
             "larger": f"larger model {p.larger_depth}x{p.larger_width}, k-means joint"}
    return {key: named.get(key) or FIXED_LABELS[key] for key in KEYS}


def base_config(p: Parameters) -> RunConfig:
    """Chapter 2's set-up: the mixture, an MLP of 2 hidden layers of 128 units, code dimension = data dimension."""
    return mixture_config(p.data_dim, p.codebook_size, p.steps, p.device)


def kmeans_start(p: Parameters) -> RunConfig:
    """The paper's collapsed baseline: k-means on the untrained encoder, joint training."""
    return base_config(p).replace(quantizer={"init": "kmeans"})


def deferred(config: RunConfig, fraction: float, reinit: bool = True) -> RunConfig:
    """``config`` with a warm-up of ``fraction`` of its budget, unquantized, out of the same steps; at the
    switch the codebook is set by k-means on the trained encoder (``reinit``) or kept."""
    steps = config.train.steps
    train = schedule_change("deferred", steps, round(fraction * steps))
    return config.replace(train=train if reinit else {**train, "reinit_at_switch": False})


def conditions(p: Parameters) -> dict[str, tuple[RunConfig, list[int]]]:
    """The side-by-side comparison: label -> (config, seeds). The two arms of the primary tests and EMA +
    restart from the k-means start run on every seed, the rest on the first few."""
    km = kmeans_start(p)
    normal = base_config(p).replace(quantizer={"init": "normal", "init_scale": 1e-3})
    restart = {"restart_threshold": p.restart_threshold, "restart_every": p.restart_every}
    ema = {"update": "ema", "ema_decay": p.ema_decay}
    runs = {"km": (km, p.seeds), "normal": (normal, p.few),
            "defer": (deferred(base_config(p), p.main_fraction), p.seeds),
            "keep": (deferred(km, p.main_fraction, reinit=False), p.few),
            "larger": (km.replace(model={"depth": p.larger_depth, "width": p.larger_width}), p.few),
            "restart": (km.replace(quantizer=restart), p.few), "ema": (km.replace(quantizer=ema), p.few),
            "er_km": (km.replace(quantizer={**ema, **restart}), p.seeds),
            "er_n": (normal.replace(quantizer={**ema, **restart}), p.few)}
    return {label: runs[key] for key, label in labels(p).items()}


def warmup_sweep(p: Parameters) -> dict[tuple[str, float], RunConfig]:
    """(variant, warm-up fraction) -> config, from the k-means baseline; fraction 0 is the joint baseline."""
    km = kmeans_start(p)
    configs = {}
    for f in [0.0, *p.warmup_fractions]:
        configs[(REINIT, f)] = km if f == 0 else deferred(base_config(p), f)
        configs[(KEEP, f)] = km if f == 0 else deferred(km, f, reinit=False)
    return configs


def labelled_runs(p: Parameters) -> list[tuple[Any, RunConfig]]:
    """(label, config) of every run the chapter reads, one per seed; the warm-up sweep on the first seeds."""
    labelled = [(name, cfg.replace(train={"seed": s})) for name, (cfg, ss) in conditions(p).items() for s in ss]
    return labelled + [(key, cfg.replace(train={"seed": s})) for key, cfg in warmup_sweep(p).items() for s in p.few]


def describe_setup(p: Parameters) -> str:
    """The data set, K, the budget, the optimizer and the seeds, as printed above the runs."""
    base = base_config(p)
    return (f"{gaussian_mixture(dim=p.data_dim).description}\n"
            f"K = {p.codebook_size}, {p.steps} steps, batch {base.train.batch_size}, Adam lr {base.train.lr}, "
            f"beta {base.quantizer.beta}; seeds {p.seeds} (other conditions: {p.few})")


@dataclass(frozen=True)
class Study:
    """The chapter's runs as tables: ``frame`` one row per run of the side-by-side conditions (with the used
    bits), ``warmup`` one row per run of the warm-up sweep (with its variant and warm-up fraction)."""
    params: Parameters
    frame: pd.DataFrame
    warmup: pd.DataFrame
    runs: int
    statuses: list[str]

    @property
    def order(self) -> list[str]:
        """The conditions' labels in the order of the table and the figure."""
        return list(labels(self.params).values())

    @property
    def names(self) -> dict[str, str]:
        """Each condition's label by its short key."""
        return labels(self.params)


def run(p: Parameters) -> Study:
    """Train every run of the chapter in one sweep (a config serving several labels is trained once)."""
    labelled = labelled_runs(p)
    configs = list(dict.fromkeys(cfg for _, cfg in labelled))
    runs = dict(zip(configs, sweep(configs, workers=p.workers, progress=False)))
    rows = results_frame([runs[cfg] for _, cfg in labelled], [name for name, _ in labelled])
    side = rows["condition"].isin(list(labels(p).values()))
    frame = rows[side].reset_index(drop=True)
    frame["used_bits"] = frame["usage_entropy"] / math.log(2)
    warmup = rows[~side].reset_index(drop=True)
    warmup["variant"] = [c[0] for c in warmup["condition"]]
    warmup["warm-up fraction"] = [c[1] for c in warmup["condition"]]
    return Study(p, frame, warmup, len(configs), sorted(set(r.status for r in runs.values())))


def describe_runs(study: Study) -> str:
    """How many runs were trained and how they ended, as printed below the set-up."""
    return f"{study.runs} runs, statuses: {study.statuses}"


# --- tables and figures ----------------------------------------------------------------------------

def side_by_side_table(study: Study) -> pd.DataFrame:
    """Mean ± 95% interval of each metric per condition, in the chapter's order, with its number of seeds."""
    table = summary_table(study.frame, metrics=METRICS).loc[study.order]
    expected = {name: len(ss) for name, (_, ss) in conditions(study.params).items()}
    if table["runs"].to_dict() != expected:
        raise ValueError(f"runs per condition {table['runs'].to_dict()} differ from the plan's seeds {expected}")
    return table.rename(columns={"runs": "seeds"})


def show_side_by_side(study: Study) -> None:
    """Display :func:`side_by_side_table` for readers."""
    p = study.params
    show_table(side_by_side_table(study), index_label="Condition",
               caption=f"Mean ± 95% interval over the seeds of each row ({len(p.seeds)} or {len(p.few)}); the code "
                       f"rate of every row is log2 K = {math.log2(p.codebook_size):g} bits per vector.")


def side_by_side_figure(study: Study) -> plt.Figure:
    """One panel per collapse measure, a numbered bar per condition with each seed as a dot."""
    fig, axes = style.figure(3, 2, panel_height=1.7, sharex=True)
    for ax, (metric, title) in zip(axes.flat, PANELS):
        plots.metric_by_condition(ax, study.frame, metric, order=study.order, ylabel="", title=title)
    axes[0, 1].axhline(study.params.codebook_size, ls="--", c=style.REFERENCE, lw=1)
    axes[1, 1].axhline(np.log(N_CLUSTERS), ls="--", c=style.REFERENCE, lw=1)
    axes[2, 1].set_yscale("log")
    handles, names = style.condition_handles(study.order, numbered=True)
    ref, ref_name = style.reference_handle("K (perplexity), log 10 (mode entropy)")
    style.shared_legend(fig, handles + [ref], names + [ref_name], ncol=2)
    return fig


def warmup_table(study: Study) -> pd.DataFrame:
    """Mean over the first seeds of each (variant, warm-up fraction) of the warm-up sweep."""
    return study.warmup.groupby(["variant", "warm-up fraction"], sort=False)[SWEEP_METRICS].mean()


def show_warmup_sweep(study: Study) -> None:
    """Display :func:`warmup_table` for readers."""
    p = study.params
    show_table(warmup_table(study), index_label="Variant, warm-up", decimals=3,
               caption=f"Mean over {len(p.few)} seeds; warm-up as a share of the {p.steps}-step budget.")


def warmup_figure(study: Study) -> plt.Figure:
    """Perplexity, spread and reconstruction against the warm-up share, re-initialized or kept codebook."""
    fig, axes = style.figure(1, 3, panel_height=2.3)
    for ax, (metric, title) in zip(axes, SWEEP_PANELS):
        plots.metric_lines(ax, study.warmup, "warm-up fraction", metric, hue="variant", ylabel="",
                           xlabel="warm-up share")
        ax.set_title(title)
    axes[0].axhline(study.params.codebook_size, ls="--", c=style.REFERENCE, lw=1)
    axes[2].set_yscale("log")
    style.legend_from(axes[0], fig)
    return fig


# --- claim C8 and the prose ------------------------------------------------------------------------

def claim_values(study: Study) -> dict[str, tuple[dict[int, float], dict[int, float]]]:
    """C8's primary tests: deferred against the k-means baseline, perplexity and MSE, on every seed."""
    arm = lambda metric, key: by_seed(study.frame, metric, condition=study.names[key])  # noqa: E731
    return {"C8-perplexity": (arm("perplexity", "defer"), arm("perplexity", "km")),
            "C8-mse": (arm("recon_error", "defer"), arm("recon_error", "km"))}


def ratios_to_deferred(study: Study) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Each other condition against deferred on its own seeds, on the primary tests' statistic (paired
    ratio, 95% interval) for perplexity and MSE: reported, never voting."""
    df, defer = study.frame, study.names["defer"]
    return {name: {m: paired_effect(by_seed(df, m, condition=name), by_seed(df, m, seeds=ss, condition=defer))
                   for m in ("perplexity", "recon_error")}
            for name, (_, ss) in conditions(study.params).items() if name != defer}


def condition_means(study: Study) -> pd.DataFrame:
    """The mean of each measure per condition (the numbers the prose quotes without an interval)."""
    return study.frame.groupby("condition")[METRICS].mean()


def claim_evidence(study: Study) -> str:
    """C8's secondary measurements in words: the code rate, utilization, mode entropy, EMA + restart."""
    p, mean, name = study.params, condition_means(study), study.names
    er_km = ratios_to_deferred(study)[name["er_km"]]
    return (f"same K = {p.codebook_size} and one code per vector in every arm, so the code rate (log2 K = "
            f"{math.log2(p.codebook_size):g} bits per vector) is equal by construction and not tested; utilization "
            f"{mean.loc[name['defer'], 'utilization']:.3g} (deferred) vs {mean.loc[name['km'], 'utilization']:.3g} "
            f"(baseline); mode entropy {mean.loc[name['defer'], 'mode_entropy']:.3g} vs "
            f"{mean.loc[name['km'], 'mode_entropy']:.3g} nats; EMA + restart from k-means / deferred over "
            f"{len(p.seeds)} seeds: perplexity {fmt_effect(er_km['perplexity'])}, reconstruction MSE "
            f"{fmt_effect(er_km['recon_error'])}")


def claim_numbers(study: Study) -> dict[str, Any]:
    """The numbers recorded with C8's verdict: every condition's ratios to deferred quantization."""
    return {"ratio_to_deferred": ratios_to_deferred(study)}


def _verdict_texts(study: Study, c8: Verdict, ratios: dict[str, dict[str, tuple[float, float, float]]]) -> dict[str, str]:
    """The verdict, its tests, the set-up and which fixes come within 10% of deferred quantization."""
    p = study.params
    by_key = {key: ratios[name] for key, name in study.names.items() if key != "defer"}
    tests = {t["key"]: (t["effect"], t["low"], t["high"]) for t in c8.primary}
    outcome = {t["key"]: t["outcome"] for t in c8.primary}
    within = {key: r["perplexity"][1] >= 0.9 and r["recon_error"][2] <= 1.1 for key, r in by_key.items()}
    return {
        "c8_verdict": c8.verdict, "c8_n_seeds": str(len(p.seeds)), "c8_fraction": f"{p.main_fraction:g}",
        "c8_stability": f"{c8.stability:.2f}", "n_few": str(len(p.few)), "steps": f"{p.steps:,}",
        "K": str(p.codebook_size), "rate_bits": f"{math.log2(p.codebook_size):g}",
        "larger_size": f"{p.larger_depth} hidden layers of {p.larger_width} units",
        "c8_ppl_ratio": fmt_effect(tests["C8-perplexity"]), "c8_ppl_outcome": outcome["C8-perplexity"],
        "c8_mse_ratio": fmt_effect(tests["C8-mse"]), "c8_mse_outcome": outcome["C8-mse"],
        "er_km_within": "comes" if within["er_km"] else "does not come",
        "er_n_within": "does" if within["er_n"] else "does not",
        "within_list": ", ".join(FIXES[key] for key in FIXES if within[key]) or "none",
        "short_list": ", ".join(FIXES[key] for key in FIXES if by_key[key]["perplexity"][2] < 0.9) or "none",
    }


def _ratio_texts(study: Study, ratios: dict[str, dict[str, tuple[float, float, float]]]) -> dict[str, str]:
    """``<key>_ppl`` and ``<key>_mse``: each secondary condition's ratios to deferred."""
    texts = {}
    for key in ("normal", "keep", "larger", "restart", "ema", "er_km", "er_n"):
        texts[f"{key}_ppl"] = fmt_effect(ratios[study.names[key]]["perplexity"])
        texts[f"{key}_mse"] = fmt_effect(ratios[study.names[key]]["recon_error"])
    return texts


def _mean_texts(study: Study) -> dict[str, str]:
    """``<key>_<metric>_mean``: the mean measures of the conditions the prose quotes."""
    mean = condition_means(study)
    return {f"{key}_{short}_mean": f"{mean.loc[study.names[key], metric]:.3g}"
            for key in ("defer", "km", "normal", "er_km", "ema")
            for metric, short in [("utilization", "util"), ("perplexity", "ppl"), ("recon_error", "mse"),
                                  ("used_bits", "bits"), ("mode_entropy", "H")]}


def _sweep_texts(study: Study) -> dict[str, str]:
    """The ranges over the warm-up sweep, re-initialized or kept, and the joint baseline on the same seeds."""
    table = warmup_table(study)
    reinit, keep = table.loc[REINIT].drop(index=0.0), table.loc[KEEP].drop(index=0.0)
    span = lambda values: f"{values.min():.3g}–{values.max():.3g}"  # noqa: E731
    return {
        "sweep_fracs": ", ".join(f"{f:g}" for f in study.params.warmup_fractions),
        "reinit_ppl_range": span(reinit["perplexity"]), "reinit_mse_range": span(reinit["recon_error"]),
        "reinit_best_frac": f"{reinit['recon_error'].idxmin():g}",
        "keep_ppl_range": span(keep["perplexity"]), "keep_mse_range": span(keep["recon_error"]),
        "joint_few_ppl": f"{table.loc[(REINIT, 0.0), 'perplexity']:.3g}",
        "joint_few_mse": f"{table.loc[(REINIT, 0.0), 'recon_error']:.3g}",
    }


def prose_values(study: Study, c8: Verdict) -> dict[str, str]:
    """Every number and verdict word the chapter's prose states, as text from this execution (glued)."""
    ratios = ratios_to_deferred(study)
    return {**_verdict_texts(study, c8, ratios), **_ratio_texts(study, ratios), **_mean_texts(study),
            **_sweep_texts(study)}


def results_numbers(study: Study) -> dict[str, Any]:
    """What the results file records beside the verdict: the means per condition and per warm-up, the config."""
    return {"full_profile_work_ratio": work_ratio(study.params),
            "summary": study.frame.groupby("condition", sort=False)[METRICS].mean().to_dict(orient="index"),
            "warmup_sweep": {f"{v} @ {f:g}": row for (v, f), row in warmup_table(study).to_dict(orient="index").items()},
            "config": base_config(study.params).to_dict()}
