"""Chapter 3's experiment: a low-capacity encoder collapses the embeddings, and codebook fixes cannot undo it.

Chapter 2 showed a codebook collapsing around healthy embeddings. Here the embeddings themselves are narrow:
an encoder a few units wide squeezes the 32-D mixture's nine informative directions into fewer, and a
quantizer trained on it, however its codebook is initialized or restarted, has nothing wider to spread over
(claim C4). Separately, VQ training from step 0 narrows even a wide encoder's latents, which an autoencoder
warm-up avoids (claim C9). Every configuration is trained once in one sweep, and each comparison is a
selection of its rows:

- the **primary arms** (every seed): widths 4 and 128 with deferred quantization, width 4 with deferred
  quantization plus dead-code restart, and width 128 trained jointly;
- the **capacity grid** (the first ``grid_seeds`` seeds): depth x width under a plain autoencoder, joint and
  deferred training at the same step budget;
- the **secondary fixes**: dead-code restart with joint training on the width-4 encoder;
- the **warm-up sweep** on the width-128 encoder (the first ``sweep_seeds`` seeds).

The notebook is ``notebooks/03_embeddings_collapse.ipynb``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import notebook as nbk
from .. import plots, style
from ..config import TRAININGS, RunConfig, schedule_change
from ..data import gaussian_mixture
from ..notebook import check_int, check_positive, check_sorted_fractions, check_sorted_ints, param
from ..results import Verdict
from ..sweep import sweep
from ..tables import by_seed, evaluation, plan_frame, saturation_point, summary_table, trajectory_frame, value_range
from ..train import RunResult

NARROW, WIDE = 4, 128      # the widths the registry's C4 tests compare (vqstudy.claims: C4-width, C4-fix)
CLAIMS = ("C4", "C9")
EMBED = ["embed_effective_dim", "embed_participation_ratio", "cluster_separation"]
TOKENS = ["utilization", "perplexity", "mode_entropy", "recon_error"]
END_METRICS = ["embed_effective_dim", "used_codebook_effective_dim", "codebook_effective_dim", "water_filling_dim",
               "embed_participation_ratio"]
# the primary tests' arms: (training, width, dead-code restart), at depth fix_depth, every seed
PRIMARY = [("deferred", NARROW, False), ("deferred", NARROW, True), ("deferred", WIDE, False), ("joint", WIDE, False)]
# the width-4 encoder under the codebook fixes, against the wide encoder (the control of both C4 tests)
FIX_ARMS = {"baseline": ("joint", NARROW, False), "restart": ("joint", NARROW, True),
            "deferred": ("deferred", NARROW, False), "deferred + restart": ("deferred", NARROW, True),
            f"wide encoder (width {WIDE}), deferred": ("deferred", WIDE, False)}
FIX_ORDER = list(FIX_ARMS)


@dataclass(frozen=True)
class Parameters(nbk.RunParameters):
    """Chapter 3's parameters; the full profile trains 20 other seeds, 4x longer, on a finer grid and sweep."""
    steps: int = param(1000, check_int, low=10)
    data_dim: int = param(32, check_int, low=2)
    latent_dim: int = param(16, check_int, low=1)
    codebook_size: int = param(64, check_int, low=2)
    fix_depth: int = param(2, check_int, low=1)
    depths: list[int] = param([0, 1, 2, 4], check_sorted_ints, low=0, min_len=2)
    widths: list[int] = param([4, 16, 128], check_sorted_ints, low=1, min_len=2)
    grid_seeds: int = param(1, check_int)
    restart_threshold: float = param(1.0, check_positive)
    warmup_fractions: list[float] = param([0.1, 0.25, 0.5, 0.75, 0.9], check_sorted_fractions, min_len=2)
    sweep_seeds: int = param(2, check_int)
    eval_every: int = param(100, check_int)

    def full_profile(self) -> dict[str, Any]:
        return {"seeds": list(range(10, 30)), "steps": 4 * self.steps, "eval_every": 4 * self.eval_every,
                "widths": [4, 8, 16, 32, 128], "grid_seeds": 2, "sweep_seeds": 3,
                "warmup_fractions": [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]}

    def check_relations(self) -> None:
        if self.fix_depth not in self.depths:
            raise self.invalid("fix_depth", f"it must be one of depths={self.depths}")
        if not {NARROW, WIDE} <= set(self.widths):
            raise self.invalid("widths", f"it must hold {NARROW} and {WIDE} (the primary tests' encoders)")
        if self.warmups[0] < 1 or self.warmups[-1] >= self.steps:
            raise self.invalid("warmup_fractions", f"with steps={self.steps}, each warm-up must be at least 1 "
                               "step and leave at least 1 VQ step")

    @property
    def half(self) -> int:
        """The primary tests' deferred warm-up: half the steps."""
        return self.steps // 2

    @property
    def warmups(self) -> list[int]:
        """The warm-up sweep's lengths in steps."""
        return sorted({int(round(f * self.steps)) for f in self.warmup_fractions})

    @property
    def grid_seed_count(self) -> int:
        """Seeds per cell of the capacity grid and of the secondary fixes."""
        return min(self.grid_seeds, len(self.seeds))

    @property
    def sweep_seed_count(self) -> int:
        """Seeds per warm-up of the sweep."""
        return min(self.sweep_seeds, len(self.seeds))


# --- the runs ---------------------------------------------------------------------------------------

def base_config(params: Parameters) -> RunConfig:
    """What every run of the chapter shares: the 32-D mixture, the code dimension, K, the step budget."""
    return RunConfig().replace(
        data={"dim": params.data_dim},
        model={"latent_dim": params.latent_dim},
        quantizer={"codebook_size": params.codebook_size},
        train={"steps": params.steps, "eval_every": params.eval_every, "device": params.device},
    )


def setup_text(params: Parameters, base: RunConfig) -> str:
    """The data set and the training set-up, as the chapter prints them before training."""
    return (f"{gaussian_mixture(dim=params.data_dim).description}\n"
            f"code dim {params.latent_dim}, K = {params.codebook_size}, {params.steps} steps, batch "
            f"{base.train.batch_size}, Adam lr {base.train.lr}, beta {base.quantizer.beta}, seeds {params.seeds}")


def plan_rows(params: Parameters) -> list[dict[str, Any]]:
    """One row per (part, training, depth, width, restart, seed, warm-up) the chapter reads: the primary arms,
    the capacity grid, the secondary fixes and the warm-up sweep (a run may serve several rows)."""
    p, seeds = params, params.seeds
    warmup = {"deferred": p.half, "joint": 0, "autoencoder": p.steps}  # outside the warm-up sweep
    row = lambda part, t, d, w, r, s, wu: {"part": part, "training": t, "depth": d, "width": w,  # noqa: E731
                                           "restart": r, "seed": s, "warmup": wu}
    return ([row("primary", t, p.fix_depth, w, r, s, warmup[t]) for s in seeds for t, w, r in PRIMARY]
            + [row("grid", t, d, w, False, s, warmup[t]) for s in seeds[:p.grid_seeds] for t in TRAININGS
               for d in p.depths for w in (p.widths if d > 0 else p.widths[-1:])]
            + [row("fixes", "joint", p.fix_depth, NARROW, True, s, 0) for s in seeds[:p.grid_seeds]]
            + [row("warm-up", "joint" if w == 0 else "deferred", p.fix_depth, WIDE, False, s, w)
               for s in seeds[:p.sweep_seeds] for w in [0] + p.warmups])


def run_plan(params: Parameters, base: RunConfig) -> pd.DataFrame:
    """:func:`plan_rows` with the phase each row is read at and its run's config."""
    return pd.DataFrame([{**r, "phase": "autoencoder" if r["training"] == "autoencoder" else "final",
                          "config": base.replace(
                              model={"depth": r["depth"], "width": r["width"]},
                              quantizer={"restart_threshold": params.restart_threshold if r["restart"] else 0.0},
                              train={"seed": r["seed"], **schedule_change(r["training"], params.steps, r["warmup"])})}
                         for r in plan_rows(params)])


def train_plan(plan: pd.DataFrame, workers: int) -> dict[RunConfig, RunResult]:
    """Every distinct config of ``plan`` trained once, by config."""
    unique = list(dict.fromkeys(plan.config))
    return dict(zip(unique, sweep(unique, workers=workers, progress=False)))


def run_frame(plan: pd.DataFrame, runs: Mapping[RunConfig, RunResult]) -> pd.DataFrame:
    """One row per row of ``plan``, with its run's metrics, its encoder's name and its arm's name."""
    df = plan_frame(plan, runs)
    df["capacity"] = ["linear" if d == 0 else f"depth {d}, width {w}" for d, w in zip(df.depth, df.width)]
    df["arm"] = [f"width {w}, {t}" + (" + dead-code restart" if r else "")
                 for w, t, r in zip(df.width, df.training, df.restart)]
    return df


def runs_text(plan: pd.DataFrame, runs: Mapping[RunConfig, RunResult], df: pd.DataFrame) -> str:
    """How many rows the plan has, how many runs they needed, and how the runs ended."""
    return f"{len(plan)} planned rows, {len(runs)} distinct runs, statuses: {sorted(set(df.status))}"


# --- C4: the primary arms, the capacity grid, the codebook fixes --------------------------------------

def primary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean ± interval of the embedding and token metrics of each primary arm, in the plan's order."""
    primary = df[df.part == "primary"]
    return summary_table(primary, by="arm", metrics=EMBED + TOKENS).loc[list(dict.fromkeys(primary.arm))]


def grid_figure(df: pd.DataFrame, part: str = "grid") -> plt.Figure:
    """Effective dimension and reconstruction MSE over depth x width, one panel per training, shared scales."""
    nonlinear = df[(df.part == part) & (df.depth > 0)]
    fig, axes = style.figure(2, 3, panel_height=2.3)
    for row, (metric, title, fmt, cmap) in enumerate([("embed_effective_dim", "effective dim.", ".1f", "viridis"),
                                                       ("recon_error", "recon. MSE", ".2f", "viridis_r")]):
        limits = nonlinear[metric].agg(["min", "max"])
        for ax, training in zip(axes[row], TRAININGS):
            table = nonlinear[nonlinear.training == training].pivot_table(index="depth", columns="width", values=metric)
            plots.heatmap(ax, table, f"{training}: {title}", fmt=fmt, cmap=cmap, vmin=limits["min"],
                          vmax=limits["max"], cbar=False)
    return fig


def training_table(df: pd.DataFrame, part: str = "grid") -> pd.DataFrame:
    """Per encoder of the grid (``part``), effective dimension and reconstruction MSE under each training side
    by side."""
    metrics = ("embed_effective_dim", "recon_error")
    table = df[df.part == part].pivot_table(index=["depth", "width", "capacity"], columns="training",
                                              values=list(metrics))
    return table.droplevel(["depth", "width"])[[(m, t) for m in metrics for t in TRAININGS]]


DIGITS_PART = "digits grid"


def digits_plan(params: Parameters, base: RunConfig) -> pd.DataFrame:
    """The capacity grid again on scikit-learn's 8x8 digits: 64-D real images on a curved manifold where,
    unlike on the linear-Gaussian mixture, a deeper encoder has something to gain (same code dimension, K,
    steps, trainings and seeds as the mixture's grid)."""
    plan = run_plan(params, base.replace(data={"name": "digits"}))
    return plan[plan.part == "grid"].assign(part=DIGITS_PART).reset_index(drop=True)


def digits_text(digits: pd.DataFrame, params: Parameters) -> dict[str, str]:
    """The digits grid in words (glued): each training's grid, and whether depth lowers the plain
    autoencoder's error at width 128 (by a tenth or more against depth 1: one seed, a secondary map)."""
    means = {t: g.groupby("capacity")[["embed_effective_dim", "recon_error"]].mean()
             for t, g in digits[digits.part == DIGITS_PART].groupby("training")}
    ae = means["autoencoder"]["recon_error"]
    depths = [d for d in params.depths if d > 0]
    by_depth = {d: ae[f"depth {d}, width {WIDE}"] for d in depths}
    best = min(by_depth, key=by_depth.get)
    helps = by_depth[best] < 0.9 * by_depth[depths[0]]
    return {
        **{f"c4_digits_{t}": _grid_text(g, params) for t, g in means.items()},
        "c4_digits_depth": (f"at width {WIDE}, the plain autoencoder's reconstruction MSE is "
                            + ", ".join(f"{by_depth[d]:.3g} at depth {d}" for d in depths)
                            + f" (linear: {ae['linear']:.3g})"),
        "c4_digits_nonlinear": (f"the nonlinear encoder of depth {depths[0]} reconstructs with "
                                f"{by_depth[depths[0]] / ae['linear']:.2f} times the linear encoder's error"),
        "c4_digits_depth_word": (f"depth helps here: depth {best} reconstructs with "
                                 f"{by_depth[best] / by_depth[depths[0]]:.2f} times the error of depth {depths[0]}"
                                 if helps else f"depth does not help here: no depth beyond {depths[0]} lowers the "
                                 "error by a tenth"),
    }


def spectrum_figure(df: pd.DataFrame, plan: pd.DataFrame, runs: Mapping[RunConfig, RunResult],
                    params: Parameters) -> plt.Figure:
    """The share of the embeddings' variance per principal component, first seed, linear and depth
    ``fix_depth`` encoders, one panel per training: a collapsed encoder puts it on a few components."""
    seed, widths = params.seeds[0], params.widths
    grid = df[df.part == "grid"]
    first = grid[(grid.seed == seed) & grid.depth.isin([0, params.fix_depth])].sort_values(["depth", "width"])
    shades = dict(zip(widths, plt.cm.viridis(np.linspace(0, 0.9, len(widths)))))
    fig, axes = style.figure(1, 3, panel_height=2.6, sharey=True)
    for ax, training in zip(axes, TRAININGS):
        for row in first[first.training == training].itertuples():
            spec = np.asarray(evaluation(runs[plan.config[row.Index]], row.phase)["embed_spectrum"])
            ax.plot(np.arange(1, len(spec) + 1), np.clip(spec, 1e-8, None), marker="o", ms=3,
                    color=style.REFERENCE if row.depth == 0 else shades[row.width],
                    label="linear" if row.depth == 0 else f"width {row.width}")
        ax.set(yscale="log", xlabel="principal component", title=training, ylim=(1e-6, 1))
    axes[0].set_ylabel("share of variance")
    style.legend_from(axes[0], fig, ncol=len(widths) + 1, title=f"depth {params.fix_depth} encoder, seed {seed}")
    return fig


def saturation_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per training and depth, the smallest width from which the effective dimension stays within 10% of the
    best, and the reconstruction error within 10% of the lowest ("none": the widest falls out again)."""
    nonlinear = df[(df.part == "grid") & (df.depth > 0)]
    means = nonlinear.groupby(["training", "depth", "width"])[["embed_effective_dim", "recon_error"]].mean()
    table = pd.DataFrame({
        (t, d): {"effective dim saturates at width": saturation_point(means.loc[(t, d), "embed_effective_dim"], True),
                 "best effective dim": means.loc[(t, d), "embed_effective_dim"].max(),
                 "recon error saturates at width": saturation_point(means.loc[(t, d), "recon_error"], False),
                 "lowest recon error": means.loc[(t, d), "recon_error"].min()}
        for t in TRAININGS for d in sorted(nonlinear.depth.unique())}).T.fillna("none")
    table.index = [f"{t}, depth {d}" for t, d in table.index]
    return table


def fix_frame(df: pd.DataFrame, fix_depth: int) -> pd.DataFrame:
    """The runs of each of :data:`FIX_ARMS` at depth ``fix_depth`` (one per seed), labelled in ``condition``."""
    return pd.concat([df[(df.part != "warm-up") & (df.depth == fix_depth) & (df.training == t) & (df.width == w)
                         & (df.restart == r)].drop_duplicates("seed").assign(condition=name)
                      for name, (t, w, r) in FIX_ARMS.items()])


def fixes_table(fixes: pd.DataFrame) -> pd.DataFrame:
    """Mean ± interval of the embedding and token metrics per fix, in :data:`FIX_ORDER`."""
    return summary_table(fixes, metrics=EMBED + TOKENS).loc[FIX_ORDER]


def fixes_figure(fixes: pd.DataFrame) -> plt.Figure:
    """The fixes move the tokens (utilization), not the embeddings (effective dimension, separation, MSE)."""
    fig, axes = style.figure(2, 2, panel_height=1.9, sharex=True)
    for ax, (metric, title) in zip(axes.flat, [("embed_effective_dim", "Embeddings' effective dim."),
                                               ("cluster_separation", "Cluster separation (Fisher)"),
                                               ("utilization", "Utilization"), ("recon_error", "Reconstruction MSE")]):
        plots.metric_by_condition(ax, fixes, metric, order=FIX_ORDER, ylabel="", title=title)
    style.shared_legend(fig, *style.condition_handles(FIX_ORDER, numbered=True))
    return fig


# --- C9: effective dimension during training, the warm-up sweep ---------------------------------------

def c9_arms(half: int) -> dict[str, tuple[str, int]]:
    """The two schedules of the C9 test on the width-128 encoder, by name: (training, warm-up steps)."""
    return {"joint": ("joint", 0), f"deferred (warm-up {half})": ("deferred", half)}


def trajectories(plan: pd.DataFrame, runs: Mapping[RunConfig, RunResult], half: int) -> pd.DataFrame:
    """Every evaluation of the C9 arms' runs; the codebook's dimensions only once a codebook exists."""
    configs = [(name, c) for name, (t, w) in c9_arms(half).items()
               for c in plan[(plan.part == "primary") & (plan.training == t) & (plan.width == WIDE)].config]
    traj = trajectory_frame([runs[c] for _, c in configs], [name for name, _ in configs],
                            END_METRICS).rename(columns={"condition": "schedule"})
    traj.loc[~traj.quantized, ["used_codebook_effective_dim", "codebook_effective_dim"]] = np.nan
    return traj


def end_of_training(traj: pd.DataFrame) -> pd.DataFrame:
    """The last evaluation of each run of :func:`trajectories`."""
    return traj.sort_values("step").groupby(["schedule", "seed"]).tail(1)


def end_table(ends: pd.DataFrame, half: int) -> pd.DataFrame:
    """Mean ± interval of the dimensions at the end of training, per C9 schedule."""
    return summary_table(ends, by="schedule", metrics=END_METRICS).loc[list(c9_arms(half))]


def trajectory_figure(traj: pd.DataFrame, half: int) -> plt.Figure:
    """The latents', the used codebook's and the water-filling dimension over the steps, the switch marked."""
    fig, axes = style.figure(1, 3, panel_height=2.4, sharey=True)
    for ax, (metric, title) in zip(axes, [("embed_effective_dim", "Latents"), ("used_codebook_effective_dim",
                                                                              "Codebook (used codes)"),
                                          ("water_filling_dim", "Water-filling prediction")]):
        plots.metric_lines(ax, traj, x="step", y=metric, hue="schedule", ylabel="dimensions")
        ax.axvline(half, ls=":", c=style.REFERENCE, lw=1)
        ax.set_title(title)
    style.legend_from(axes[0], fig)
    return fig


def warmup_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The warm-up sweep's runs (warm-up 0 is joint training)."""
    return df[df.part == "warm-up"]


def warmup_table(wu: pd.DataFrame) -> pd.DataFrame:
    """Mean ± interval of the final metrics per warm-up length."""
    return summary_table(wu, by="warmup", metrics=["recon_error", "quantization_error", "perplexity",
                                                   "embed_effective_dim", "used_codebook_effective_dim"])


def warmup_figure(wu: pd.DataFrame, steps: int) -> plt.Figure:
    """Final reconstruction MSE against the warm-up length, with and without joint training's point."""
    fig, axes = style.figure(1, 2, panel_height=2.5)
    for ax, frame, title in ((axes[0], wu, "All warm-ups (0 = joint)"), (axes[1], wu[wu.warmup > 0],
                                                                       "Warm-up > 0 only")):
        plots.metric_lines(ax, frame, x="warmup", y="recon_error", xlabel=f"warm-up steps (of {steps})",
                           ylabel="final reconstruction MSE")
        ax.set_title(title)
    return fig


# --- the claims, the results file and the prose -------------------------------------------------------

@dataclass(frozen=True)
class Means:
    """The means over seeds that the claims' evidence, the results file and the prose quote."""
    arms: pd.DataFrame                 # per primary arm
    fixes: pd.DataFrame                # per fix of FIX_ORDER
    grid: dict[str, pd.DataFrame]      # per training: per encoder of the capacity grid
    end: pd.DataFrame                  # per C9 schedule, at the end of training
    warmup_mse: pd.Series              # final reconstruction MSE per warm-up length
    dim_at_switch: float               # the width-128 encoder's latent effective dimension after its warm-up
    thresholds: pd.DataFrame           # :func:`saturation_table`


def means(df: pd.DataFrame, plan: pd.DataFrame, runs: Mapping[RunConfig, RunResult], params: Parameters) -> Means:
    """The chapter's :class:`Means` from its runs."""
    switch = plan[(plan.part == "primary") & (plan.training == "deferred") & (plan.width == WIDE)]
    grid = df[df.part == "grid"]
    return Means(
        arms=df[df.part == "primary"].groupby("arm")[EMBED + TOKENS].mean(),
        fixes=fix_frame(df, params.fix_depth).groupby("condition")[EMBED + TOKENS].mean().loc[FIX_ORDER],
        grid={t: grid[grid.training == t].groupby("capacity")[EMBED + TOKENS].mean() for t in TRAININGS},
        end=end_of_training(trajectories(plan, runs, params.half)).groupby("schedule")[END_METRICS].mean()
        .loc[list(c9_arms(params.half))],
        warmup_mse=warmup_frame(df).groupby("warmup").recon_error.mean(),
        dim_at_switch=plan_frame(switch.assign(phase="autoencoder"), runs).embed_effective_dim.mean(),
        thresholds=saturation_table(df))


def claim_values(df: pd.DataFrame) -> dict[str, dict[str, tuple[dict[int, float], dict[int, float]]]]:
    """Per claim, the (treatment by seed, control by seed) of each of its primary tests: latent effective
    dimensions of the primary arms."""
    primary = df[df.part == "primary"]
    edim = {(t, w, r): by_seed(primary, "embed_effective_dim", training=t, width=w, restart=r) for t, w, r in PRIMARY}
    return {"C4": {"C4-width": (edim["deferred", NARROW, False], edim["deferred", WIDE, False]),
                   "C4-fix": (edim["deferred", NARROW, True], edim["deferred", WIDE, False])},
            "C9": {"C9-warmup": (edim["deferred", WIDE, False], edim["joint", WIDE, False])}}


def deepest(params: Parameters) -> str:
    """The capacity grid's deepest, widest encoder."""
    return f"depth {params.depths[-1]}, width {WIDE}"


def _utilization(m: Means) -> str:
    """The width-4 encoder's utilization under each codebook fix."""
    return ", ".join(f"{name} {m.fixes.loc[name, 'utilization']:.3g}" for name in FIX_ORDER[:-1])


def claim_evidence(m: Means, params: Parameters) -> dict[str, str]:
    """Each claim's secondary measurements, in words (shown beside the verdict, never voting)."""
    fixes, grid, end, deep = m.fixes, m.grid, m.end, deepest(params)
    wide, deferred = FIX_ORDER[-1], f"deferred (warm-up {params.half})"
    return {
        "C4": (f"Secondary, depth {params.fix_depth}, width {NARROW} against {WIDE} (deferred): Fisher ratio "
               f"{fixes.loc['deferred', 'cluster_separation']:.3g} vs {fixes.loc[wide, 'cluster_separation']:.3g}, "
               f"recon MSE {fixes.loc['deferred', 'recon_error']:.3g} vs {fixes.loc[wide, 'recon_error']:.3g}; "
               f"utilization of the width-{NARROW} encoder: " + _utilization(m)
               + f". Capacity grid ({params.grid_seed_count} seed(s)), {deep}: effective dim "
               + ", ".join(f"{t} {grid[t].loc[deep, 'embed_effective_dim']:.3g}" for t in TRAININGS)
               + "; recon MSE " + ", ".join(f"{t} {grid[t].loc[deep, 'recon_error']:.3g}" for t in TRAININGS)
               + "."),
        "C9": (f"Secondary (width {WIDE}): latent effective dim after the autoencoder warm-up "
               f"{m.dim_at_switch:.3g}, at the end of joint training "
               f"{end.loc['joint', 'embed_effective_dim']:.3g}; codebook effective dim over the used codes: joint "
               f"{end.loc['joint', 'used_codebook_effective_dim']:.3g}, deferred "
               f"{end.loc[deferred, 'used_codebook_effective_dim']:.3g} (over all K codes: "
               f"{end.loc['joint', 'codebook_effective_dim']:.3g}, {end.loc[deferred, 'codebook_effective_dim']:.3g}); "
               f"final MSE by warm-up ({params.sweep_seed_count} seeds): "
               + ", ".join(f"{w}: {v:.3g}" for w, v in m.warmup_mse.items()) + "."),
    }


def claim_numbers(m: Means) -> dict[str, dict[str, Any]]:
    """Each claim's secondary numbers, as its verdict in the results file records them."""
    return {"C4": {"fixes_means": m.fixes.to_dict(orient="index"),
                   "grid_means": {t: g.to_dict(orient="index") for t, g in m.grid.items()},
                   "thresholds": m.thresholds.to_dict(orient="index")},
            "C9": {"end_of_training": m.end.to_dict(orient="index"),
                   "latent_dim_at_switch": m.dim_at_switch,
                   "recon_by_warmup": {str(k): v for k, v in m.warmup_mse.items()}}}


def results_numbers(m: Means, params: Parameters, base: RunConfig, digits: pd.DataFrame) -> dict[str, Any]:
    """The numbers the results file records beside the verdicts: the full profile's work ratio (20 seeds,
    4x the steps), the joint capacity grid, the digits grid per training, the shared config."""
    grid = digits[digits.part == DIGITS_PART]
    digits_grid = {f"{t} | {capacity}": row for (t, capacity), row in grid.groupby(["training", "capacity"])[
        ["embed_effective_dim", "recon_error"]].mean().to_dict(orient="index").items()}
    return {"full_profile_work_ratio": nbk.full_profile_work_ratio(params.profile, 20 / len(params.seeds), 4),
            "grid": m.grid["joint"].to_dict(orient="index"), "digits_grid": digits_grid, "config": base.to_dict()}


def _grid_text(g: pd.DataFrame, params: Parameters) -> str:
    """One training's capacity grid in words: width 4 against width 128, the deepest encoder, the linear one."""
    narrow = [f"depth {d}, width {NARROW}" for d in params.depths if d > 0]
    wide = [f"depth {d}, width {WIDE}" for d in params.depths if d > 0]
    deep = deepest(params)
    return (f"effective dimension {value_range(g.loc[narrow, 'embed_effective_dim'])} at width "
            f"{NARROW} against {value_range(g.loc[wide, 'embed_effective_dim'])} at width {WIDE} "
            f"(depths {value_range([d for d in params.depths if d > 0])}), reconstruction MSE "
            f"{value_range(g.loc[narrow, 'recon_error'])} against "
            f"{value_range(g.loc[wide, 'recon_error'])}; at {deep}: "
            f"{g.loc[deep, 'embed_effective_dim']:.3g} dimensions, MSE {g.loc[deep, 'recon_error']:.3g};"
            f" the linear encoder: {g.loc['linear', 'embed_effective_dim']:.3g} dimensions, MSE "
            f"{g.loc['linear', 'recon_error']:.3g}")


def deep_phrase(ratio: float) -> str:
    """What joint over deferred reconstruction error at the deepest, widest encoder says about the cause."""
    return ("so what collapses there is the joint training, not the capacity" if ratio > 1.5 else
            "so the two trainings end alike there" if ratio > 1 / 1.5 else
            "so deferred quantization is the worse of the two there")


def chapter_text(m: Means, verdicts: Mapping[str, Verdict], params: Parameters) -> dict[str, Any]:
    """Every number and verdict word the chapter's prose states, from this execution (to glue)."""
    c4, c9 = verdicts["C4"], verdicts["C9"]
    tests = {t["key"]: t for v in (c4, c9) for t in v.primary}
    arms, end, deep = m.arms, m.end, deepest(params)
    deep_ratio = m.grid["joint"].loc[deep, "recon_error"] / m.grid["deferred"].loc[deep, "recon_error"]
    narrow, wide = f"width {NARROW}, deferred", f"width {WIDE}, deferred"
    deferred = f"deferred (warm-up {params.half})"
    warmups = m.warmup_mse.drop(index=0)
    return {
        "c4_verdict": c4.verdict, "c4_stability": f"{c4.stability:.2f}", "c9_verdict": c9.verdict,
        "c9_stability": f"{c9.stability:.2f}",
        **{f"{key.replace('-', '_').lower()}_{part}": tests[key][part] for key in tests
           for part in ("effect", "low", "high")},
        "c4_seeds": len(params.seeds), "c4_grid_seeds": params.grid_seed_count,
        "c4_sweep_seeds": params.sweep_seed_count, "c4_steps": f"{params.steps:,}",
        "c4_dim_narrow": arms.loc[narrow, "embed_effective_dim"],
        "c4_dim_restart": arms.loc[f"{narrow} + dead-code restart", "embed_effective_dim"],
        "c4_dim_wide": arms.loc[wide, "embed_effective_dim"],
        "c4_mse_narrow": arms.loc[narrow, "recon_error"], "c4_mse_wide": arms.loc[wide, "recon_error"],
        "c4_fisher_narrow": arms.loc[narrow, "cluster_separation"],
        "c4_fisher_wide": arms.loc[wide, "cluster_separation"],
        "c4_fisher_word": "higher" if arms.loc[narrow, "cluster_separation"]
                          > arms.loc[wide, "cluster_separation"] else "lower",
        "c4_utilization": _utilization(m),
        "c4_fix_mse": value_range(m.fixes.loc[FIX_ORDER[:-1], "recon_error"]),
        **{f"c4_grid_{t}": _grid_text(g, params) for t, g in m.grid.items()},
        "c4_deep_ratio": deep_ratio, "c4_deep_phrase": deep_phrase(deep_ratio),
        "c9_dim_switch": m.dim_at_switch, "c9_dim_joint": end.loc["joint", "embed_effective_dim"],
        "c9_dim_deferred": end.loc[deferred, "embed_effective_dim"],
        "c9_pr_joint": end.loc["joint", "embed_participation_ratio"],
        "c9_pr_deferred": end.loc[deferred, "embed_participation_ratio"],
        "c9_cb_used_joint": end.loc["joint", "used_codebook_effective_dim"],
        "c9_cb_used_deferred": end.loc[deferred, "used_codebook_effective_dim"],
        "c9_cb_all_joint": end.loc["joint", "codebook_effective_dim"],
        "c9_cb_all_deferred": end.loc[deferred, "codebook_effective_dim"],
        "c9_util_joint": arms.loc[f"width {WIDE}, joint", "utilization"],
        "c9_wf_joint": end.loc["joint", "water_filling_dim"], "c9_wf_deferred": end.loc[deferred, "water_filling_dim"],
        "c9_half": params.half, "c9_mse_joint": m.warmup_mse.loc[0], "c9_mse_warmups": value_range(warmups),
        "c9_warmups": value_range(params.warmups), "c9_best_warmup": int(warmups.idxmin()),
        "c9_mse_spread": warmups.max() - warmups.min(),
    }
