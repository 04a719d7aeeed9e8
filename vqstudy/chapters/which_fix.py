"""Chapter 8's experiment: every popular remedy for codebook collapse, side by side, on equal terms.

The paper proposes one fix for a collapsed codebook (deferred quantization) and compares it only with its
own baseline; the libraries ship many knobs. A reader choosing among them needs them measured alike: here
each remedy trains from the same collapse-prone start, on the same data, with the same model, the same
codebook size K and the same step budget, over the same seeds, and is measured with the same diagnostics
and, in alternating timed blocks, by its cost per training step relative to plain VQ. The chapter judges
no claim of the paper: its findings follow criteria fixed before the run (:class:`Parameters`'
``fixed_share`` and ``fixed_utilization``, and interval comparisons with the baseline and with deferred
quantization), and its results file keeps the numbers.

The notebook: ``notebooks/08_which_fix.ipynb``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .. import notebook as nbk
from .. import plots, style
from ..config import RunConfig, merge_changes
from ..data import load_dataset
from ..diagnostics import EXPLAINED_VARIANCE
from ..notebook import ParameterError, check_choice, check_fraction, check_int, check_positive, param
from ..sweep import sweep
from ..tables import fmt_median_interval, median_strings, median_table, results_frame, show_table
from ..train import step_cost_ratio

DATASETS = ("gaussian_mixture", "digits")
STARTS = ("kmeans", "normal")   # collapse-prone starting codebooks
DATA_NAME = {"gaussian_mixture": "mixture", "digits": "digits"}
START_NAME = {"kmeans": "k-means on untrained encoder", "normal": "normal(1e-3)"}
START = {"kmeans": {"quantizer": {"init": "kmeans"}}, "normal": {"quantizer": {"init": "normal", "init_scale": 1e-3}}}

BASELINE, DEFER, FSQ = "plain VQ (baseline)", "deferred (k-means on trained encoder)", "FSQ (no codebook)"
ORDER = (BASELINE, "EMA codebook", "dead-code restart", DEFER, "affine reparam.", "SimVQ (linear reparam.)",
         "cosine + low-dim lookup", "rotation trick", FSQ, "deferred + EMA", "EMA + restart")
START_FREE = frozenset({DEFER, "deferred + EMA", FSQ})   # their runs never use the starting codebook
METRICS = ("utilization", "perplexity", "used_bits", "recon_error", "embed_effective_dim", "codebook_effective_dim")
FULL_STEPS_FACTOR = 4   # the full profile trains this many times longer


def check_choices(name: str, values: Any, allowed: tuple[str, ...]) -> list[str]:
    """A list of distinct allowed values, at least one (the data sets, the starts)."""
    if not isinstance(values, (list, tuple)):
        raise ParameterError(f"parameter {name}={values!r} is invalid: expected distinct entries, at least one")
    values = [check_choice(name, v, allowed) for v in values]
    if not values or len(set(values)) != len(values):
        raise ParameterError(f"parameter {name}={values!r} is invalid: expected distinct entries, at least one")
    return values


def check_levels(name: str, values: Any) -> list[int]:
    """FSQ's levels per dimension: a non-empty list of integers >= 3 (repeats allowed, unlike seeds)."""
    if not isinstance(values, (list, tuple)) or not values:
        raise ParameterError(f"parameter {name}={values!r} is invalid: expected a list of integers >= 3")
    return [check_int(name, n, low=3) for n in values]


@dataclass(frozen=True)
class Parameters(nbk.RunParameters):
    """Chapter 8's parameters: the runs (seeds, steps, data, starts, K), each remedy's knobs, the step-cost
    timing and the criteria fixed before the run."""
    steps: int = param(300, check_int, low=10)
    datasets: list[str] = param(list(DATASETS), check_choices, allowed=DATASETS)
    starts: list[str] = param(["kmeans"], check_choices, allowed=STARTS)
    codebook_size: int = param(64, check_int, low=2)
    latent_dim: int = param(8, check_int, low=2)
    warmup_fraction: float = param(0.5, check_fraction)
    ema_decay: float = param(0.99, check_fraction)
    restart_threshold: float = param(1.0, check_positive)
    restart_every: int = param(50, check_int)
    lookup_dim: int = param(4, check_int, low=1)
    fsq_levels: list[int] = param([4, 4, 4], check_levels)
    cost_blocks: int = param(6, check_int)
    cost_steps: int = param(10, check_int)
    fixed_share: float = param(0.5, check_fraction)
    fixed_utilization: float = param(0.9, check_fraction)

    def full_profile(self) -> dict[str, Any]:
        """A disjoint seed set, longer training, both starting codebooks, more timed blocks."""
        return {"seeds": list(range(10, 20)), "steps": FULL_STEPS_FACTOR * self.steps, "starts": list(STARTS),
                "cost_blocks": 20}

    def check_relations(self) -> None:
        if self.lookup_dim >= self.latent_dim:
            raise self.invalid("lookup_dim", f"expected fewer than latent_dim={self.latent_dim}")
        if math.prod(self.fsq_levels) != self.codebook_size:
            raise self.invalid("fsq_levels", f"their product must be codebook_size={self.codebook_size}")
        if not 0 < self.warmup_steps < self.steps:
            raise self.invalid("warmup_fraction", f"it leaves no warm-up or no VQ steps of steps={self.steps}")

    @property
    def warmup_steps(self) -> int:
        """Deferred quantization's plain-autoencoder steps, out of the same budget."""
        return round(self.warmup_fraction * self.steps)


# --- the runs -------------------------------------------------------------------------------------

def data_change(params: Parameters, data: str) -> dict[str, dict[str, Any]]:
    """The data set's section (the mixture lives in the code dimension)."""
    return {"data": {"name": "gaussian_mixture", "dim": params.latent_dim}} if data == "gaussian_mixture" \
        else {"data": {"name": data}}


def remedy_changes(params: Parameters) -> dict[str, dict[str, dict[str, Any]]]:
    """Each remedy, in :data:`ORDER`, as its change of the base run: one quantizer option or schedule each
    (the two pairs combine them)."""
    deferred = {"schedule": "deferred", "warmup_steps": params.warmup_steps}
    ema = {"update": "ema", "ema_decay": params.ema_decay}
    restart = {"restart_threshold": params.restart_threshold, "restart_every": params.restart_every}
    changes = [{}, {"quantizer": ema}, {"quantizer": restart}, {"train": deferred},
               {"quantizer": {"reparam": "affine"}}, {"quantizer": {"reparam": "linear"}},
               {"quantizer": {"distance": "cosine", "lookup_dim": params.lookup_dim}},
               {"quantizer": {"gradient": "rotation"}}, {"quantizer": {"kind": "fsq", "fsq_levels": params.fsq_levels}},
               {"quantizer": ema, "train": deferred}, {"quantizer": {**ema, **restart}}]
    return dict(zip(ORDER, changes))


def base_config(params: Parameters) -> RunConfig:
    """Chapter 4's MLP autoencoder at this chapter's K and step budget: what every remedy changes."""
    return RunConfig().replace(model={"latent_dim": params.latent_dim, "depth": 2, "width": 128},
                               quantizer={"codebook_size": params.codebook_size},
                               train={"steps": params.steps, "eval_every": params.steps, "device": params.device})


def remedy_config(params: Parameters, data: str, start: str, remedy: str) -> RunConfig:
    """The run of one remedy on one data set from one start (a start-free remedy ignores the start)."""
    start_change = {} if remedy in START_FREE else START[start]
    return base_config(params).replace(**merge_changes(data_change(params, data), start_change,
                                                       remedy_changes(params)[remedy]))


def run_configs(params: Parameters) -> dict[tuple[str, str, str, int], RunConfig]:
    """Every (data set, start, remedy, seed) cell and its run; start-free remedies repeat one run per start."""
    return {(d, s, r, seed): remedy_config(params, d, s, r).replace(train={"seed": seed})
            for d in params.datasets for s in params.starts for r in ORDER for seed in params.seeds}


@dataclass
class Training:
    """The chapter's trained runs: one row per cell, how many distinct runs, and the wall time they took."""
    frame: pd.DataFrame
    runs: int
    cells: int
    wall_s: float


def run_frame(configs: dict[tuple[str, str, str, int], RunConfig], runs: dict[RunConfig, Any]) -> pd.DataFrame:
    """One row per cell: data set, start, remedy, seed, status, the final metrics, and the code usage in bits."""
    df = results_frame([runs[c] for c in configs.values()], [key[2] for key in configs])
    df = df.rename(columns={"condition": "remedy"})
    df.insert(0, "data", [DATA_NAME[key[0]] for key in configs])
    df.insert(1, "start", [START_NAME[key[1]] for key in configs])
    df["used_bits"] = df["usage_entropy"] / math.log(2)
    return df


def train_remedies(params: Parameters) -> Training:
    """Train every distinct run once (``params.workers`` processes; plain, EMA, restart and deferred runs
    batched over seeds) and tabulate every cell."""
    configs = run_configs(params)
    unique = list(dict.fromkeys(configs.values()))   # a start-free remedy is trained once for all starts
    started = time.perf_counter()
    runs = dict(zip(unique, sweep(unique, workers=params.workers, progress=False)))
    wall_s = time.perf_counter() - started
    return Training(run_frame(configs, runs), len(unique), len(configs), wall_s)


def setup_text(params: Parameters, training: Training) -> str:
    """The data sets, the model and training, and the runs' statuses, as printed below the set-up."""
    base = base_config(params)
    descriptions = [load_dataset(base.replace(**data_change(params, d)).data).description for d in params.datasets]
    return "\n".join([
        *descriptions,
        f"MLP autoencoder: {base.model.depth} hidden layers of {base.model.width} units per side, code dimension "
        f"{params.latent_dim}; Adam lr {base.train.lr}, batch {base.train.batch_size}, beta {base.quantizer.beta}; "
        f"K = {params.codebook_size}, {params.steps} steps, seeds {params.seeds}",
        f"{training.runs} runs ({training.cells} cells), "
        f"statuses: {training.frame['status'].value_counts().to_dict()}"])


# --- cost per training step -----------------------------------------------------------------------

@dataclass
class StepCosts:
    """Each remedy's :func:`vqstudy.train.step_cost_ratio` record, and the wall time the timing took."""
    by_remedy: dict[str, dict[str, Any]]
    wall_s: float


def measure_step_costs(params: Parameters) -> StepCosts:
    """Time every remedy against plain VQ on the first data set and start (one seed: batching is no part of it)."""
    data, start = params.datasets[0], params.starts[0]
    started = time.perf_counter()
    costs = {r: step_cost_ratio(remedy_config(params, data, start, r), blocks=params.cost_blocks,
                                steps_per_block=params.cost_steps) for r in ORDER if r != BASELINE}
    return StepCosts(costs, time.perf_counter() - started)


def plain_ms(costs: StepCosts) -> str:
    """Plain VQ's time per step in ms, from deferred quantization's timing (its quantized steps are plain)."""
    return f"{1e3 * costs.by_remedy[DEFER]['plain_s_per_step']:.2f}"


def cost_text(params: Parameters, costs: StepCosts) -> str:
    """How the step costs were timed, as printed."""
    return (f"step costs: {params.cost_blocks} blocks of {params.cost_steps} steps per arm on the "
            f"{DATA_NAME[params.datasets[0]]}, clock: {next(iter(costs.by_remedy.values()))['clock']}; plain VQ "
            f"{plain_ms(costs)} ms per step")


def cost_values(costs: StepCosts) -> dict[str, str]:
    """The step costs the prose quotes: every ratio, the dearest, deferred's (the timing noise), plain's ms."""
    ratios = {r: c["ratio"] for r, c in costs.by_remedy.items()}
    dearest = max(ratios, key=ratios.get)
    ratio_text = lambda c: f"{c['ratio']:.2f}× [{c['ratio_low']:.2f}, {c['ratio_high']:.2f}]"  # noqa: E731
    return {"cost_list": "; ".join(f"{r} {ratio_text(c)}" for r, c in costs.by_remedy.items()),
            "cost_dearest": f"{dearest} ({ratios[dearest]:.2f}×)",
            "cost_noise": ratio_text(costs.by_remedy[DEFER]),
            "plain_ms": plain_ms(costs)}


# --- the leaderboard ------------------------------------------------------------------------------

def leaderboard(params: Parameters, frame: pd.DataFrame, costs: StepCosts) -> pd.DataFrame:
    """Median [95% interval] of every metric per (data, start, remedy) over the runs that finished, with the
    step cost and the count of diverged runs; per panel sorted by median reconstruction error."""
    board = median_table(frame[frame["status"] == "ok"], list(METRICS), by=["data", "start", "remedy"])
    for stat, key in (("median", "ratio"), ("low", "ratio_low"), ("high", "ratio_high")):
        board[("step_cost", stat)] = [1.0 if r == BASELINE else costs.by_remedy[r][key] for _, _, r in board.index]
    board[("diverged", "")] = [int((frame.loc[(frame["data"] == d) & (frame["start"] == s) & (frame["remedy"] == r),
                                              "status"] != "ok").sum()) for d, s, r in board.index]
    rank = ({DATA_NAME[d]: i for i, d in enumerate(params.datasets)}
            | {START_NAME[s]: i for i, s in enumerate(params.starts)})
    order = lambda k: (rank[k[0]], rank[k[1]], board.loc[k, ("recon_error", "median")])  # noqa: E731
    return board.loc[sorted(board.index, key=order)]


def show_leaderboard(params: Parameters, board: pd.DataFrame) -> None:
    """The leaderboard as readers see it: "median [low, high]" strings, one row per data set and remedy."""
    shown = median_strings(board.drop(columns=["runs", "diverged"], level=0)).rename(columns={
        "recon_error": "Recon. MSE", "embed_effective_dim": "Embeddings' eff. dim.",
        "codebook_effective_dim": "Codebook's eff. dim.", "step_cost": "Step cost (× plain)"})
    shown.index = [f"{d}: {r}" + (f" ({s})" if len(params.starts) > 1 else "") for d, s, r in board.index]
    show_table(shown, index_label="Data: remedy",
               caption=f"Median [95% interval] over {len(params.seeds)} seeds, {params.steps} steps, "
                       f"K = {params.codebook_size} (code rate log2 K = {math.log2(params.codebook_size):g} bits); "
                       f"{int(board['diverged'].sum())} runs diverged. Sorted by median reconstruction MSE.")


def panels(params: Parameters) -> list[tuple[str, str]]:
    """(data set, start) of each panel of the figure and each block of findings."""
    return [(d, s) for d in params.datasets for s in params.starts]


def panel(board: pd.DataFrame, data: str, start: str) -> pd.DataFrame:
    """The leaderboard's rows of one data set and start, indexed by remedy."""
    return board.xs((DATA_NAME[data], START_NAME[start]), level=("data", "start"))


def tradeoff_figure(params: Parameters, board: pd.DataFrame):
    """Reconstruction against perplexity, one panel per data set (and start), one numbered point per remedy."""
    shown = panels(params)
    rows, cols = style.grid(len(shown), 2)
    fig, axes = style.figure(rows, cols, panel_height=2.9, squeeze=False)
    for ax, (d, s) in zip(axes.flat, shown):
        plots.tradeoff(ax, panel(board, d, s), "perplexity", "recon_error", order=list(ORDER),
                       xlabel="perplexity (codes in use)", ylabel="reconstruction MSE (log)",
                       title=DATA_NAME[d] + (f", {START_NAME[s]}" if len(params.starts) > 1 else ""))
        ax.axvline(params.codebook_size, ls="--", c=style.REFERENCE, lw=1)
        ax.set_yscale("log")
    style.hide_unused(axes, len(shown))
    handles, names = style.condition_handles(list(ORDER), numbered=True)
    ref, ref_name = style.reference_handle(f"K = {params.codebook_size}")
    style.shared_legend(fig, handles + [ref], names + [ref_name], ncol=2)
    return fig


# --- the findings, by the criteria fixed before the run --------------------------------------------

def panel_findings(board: pd.DataFrame, codebook_size: int, fixed_share: float,
                   fixed_utilization: float) -> dict[str, list[str]]:
    """Which remedies of one panel (``board``: a :func:`panel`) fix tokens collapse (median perplexity at least
    ``fixed_share`` of K and median utilization at least ``fixed_utilization``), raise the embeddings'
    effective dimension or cost reconstruction (interval clear of the baseline's), and which fixers
    reconstruct worse than deferred quantization; and all remedies by median reconstruction error."""
    med = lambda m, r: board.loc[r, (m, "median")]  # noqa: E731
    above = lambda m, r, other: board.loc[r, (m, "low")] > board.loc[other, (m, "high")]  # noqa: E731
    fix_tokens = [r for r in ORDER if med("perplexity", r) >= fixed_share * codebook_size
                  and med("utilization", r) >= fixed_utilization]
    return {"fix_tokens": fix_tokens,
            "fix_embeddings": [r for r in ORDER if r != BASELINE and above("embed_effective_dim", r, BASELINE)],
            "cost_reconstruction": [r for r in ORDER if r != BASELINE and above("recon_error", r, BASELINE)],
            "worse_than_deferred": [r for r in fix_tokens if r != DEFER and above("recon_error", r, DEFER)],
            "by_recon": sorted(ORDER, key=lambda r: med("recon_error", r))}


def findings(params: Parameters, board: pd.DataFrame) -> dict[str, dict[str, list[str]]]:
    """:func:`panel_findings` of every panel, by ``<data set>_<start>``."""
    return {f"{d}_{s}": panel_findings(panel(board, d, s), params.codebook_size, params.fixed_share,
                                       params.fixed_utilization) for d, s in panels(params)}


def names(remedies: list[str]) -> str:
    """A list of remedies in prose ("none" when empty)."""
    return ", ".join(remedies) if remedies else "none"


def panel_text(board: pd.DataFrame, found: dict[str, list[str]]) -> dict[str, str]:
    """What the prose quotes of one panel: the findings' lists and the baseline's, deferred's and FSQ's numbers."""
    text = lambda r, m: fmt_median_interval(*board.loc[r, m][["median", "low", "high"]])  # noqa: E731
    fix_tokens, by_recon = found["fix_tokens"], found["by_recon"]
    best = by_recon[0]
    return {"fix_tokens": names(fix_tokens), "n_fix_tokens": str(len(fix_tokens)),
            "fix_embed": names(found["fix_embeddings"]), "cost_recon": names(found["cost_reconstruction"]),
            "worse_than_deferred": names(found["worse_than_deferred"]), "best": best,
            "best_recon": text(best, "recon_error"),
            "base_ppl": text(BASELINE, "perplexity"), "base_util": text(BASELINE, "utilization"),
            "base_recon": text(BASELINE, "recon_error"), "base_edim": text(BASELINE, "embed_effective_dim"),
            "defer_ppl": text(DEFER, "perplexity"), "defer_recon": text(DEFER, "recon_error"),
            "defer_edim": text(DEFER, "embed_effective_dim"),
            "defer_rank": f"{by_recon.index(DEFER) + 1} of {len(ORDER)}",
            "defer_rank_fixers": (f"{[r for r in by_recon if r in fix_tokens].index(DEFER) + 1} of {len(fix_tokens)}"
                                  if DEFER in fix_tokens else "not among them"),
            "fsq_ppl": text(FSQ, "perplexity"), "fsq_recon": text(FSQ, "recon_error")}


def chapter_text(params: Parameters, board: pd.DataFrame, found: dict[str, dict[str, list[str]]],
                 training: Training) -> dict[str, str]:
    """Every number and remedy list the prose of "What we found" states, as text from this execution (glued)."""
    values = {f"{d}_{s}_{key}": value for d, s in panels(params)
              for key, value in panel_text(panel(board, d, s), found[f"{d}_{s}"]).items()}
    return {**values, "n_runs": f"{training.runs:,}", "explained": f"{EXPLAINED_VARIANCE:.0%}",
            "steps": f"{params.steps:,}", "n_seeds": str(len(params.seeds)),
            "n_diverged": str(int(board["diverged"].sum()))}


# --- the results file -----------------------------------------------------------------------------

def work_ratio(params: Parameters) -> float:
    """Optimizer steps of the full profile over those of ``params``' own starts: the steps factor, times both
    starts for the remedies that use one (start-free remedies train once whatever the starts)."""
    n_free, n_bound = len(START_FREE), len(ORDER) - len(START_FREE)
    return nbk.full_profile_work_ratio(params.profile, FULL_STEPS_FACTOR * (n_free + len(STARTS) * n_bound)
                                       / (n_free + len(params.starts) * n_bound))


def numbers(params: Parameters, board: pd.DataFrame, found: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
    """The results file's numbers: the leaderboard without its timings, the findings, the work ratio, the base run."""
    rows = board.drop(columns="step_cost", level=0).to_dict(orient="index")
    return {"leaderboard": {" | ".join(key): {f"{m} {s}".strip(): v for (m, s), v in row.items()}
                            for key, row in rows.items()},
            "findings": found, "full_profile_work_ratio": work_ratio(params), "config": base_config(params).to_dict()}


def timings(training: Training, costs: StepCosts) -> dict[str, Any]:
    """What differs between executions: the step costs and the wall times."""
    return {"step_costs": costs.by_remedy, "train_wall_s": round(training.wall_s, 1),
            "cost_wall_s": round(costs.wall_s, 1)}


def written_text(path: Any, training: Training, costs: StepCosts) -> str:
    """The closing line: the results file and the wall times."""
    return f"results written: {path.name}; training {training.wall_s:.0f} s wall, step costs {costs.wall_s:.0f} s wall"
