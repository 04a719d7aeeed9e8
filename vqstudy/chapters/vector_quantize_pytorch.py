"""Chapter 7's experiment: vector-quantize-pytorch's ``VectorQuantize`` under the study's collapse diagnostics.

The most used PyTorch VQ library returns ``(quantized, indices, loss)`` and nothing about codebook usage or
the encoder's rank. The chapter trains the chapter-2 autoencoder (10-cluster mixture, MLP encoder and
decoder, Adam, the same batches) with the library's quantizer in place of the study's, and measures both
collapses on the whole data set with :mod:`vqstudy.interop`, so that a reader can see whether the study's
findings carry over to a quantizer it did not write.

Six conditions. Three are the arms of claim C1 on ten seeds, diagnosed at the end: the study's small inits
(normal(1e-3), uniform(±1/K)) written into the library's codebook and trained jointly, against the library's
``kmeans_init=True`` deferred until after a plain-autoencoder warm-up. Three are findings of their own on a few
seeds, diagnosed every ``eval_every`` steps: the library's defaults, ``kmeans_init=True`` on the untrained
encoder (the paper's baseline), and ``threshold_ema_dead_code=2`` (its dead-code expiry).

Notebook: ``notebooks/07_vector_quantize_pytorch.ipynb``.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .. import notebook as nbk
from .. import plots, style
from ..config import RunConfig
from ..data import gaussian_mixture
from ..interop import save_tokenizer, train_many_with_vector_quantize, train_with_vector_quantize
from ..notebook import check_int, check_ints, param
from ..results import Verdict
from ..tables import by_seed, show_table, summary_table

# the arms of C1 (ten seeds each, diagnosed at the end)
NORMAL, UNIFORM, HEALTHY = "normal(1e-3), joint", "uniform(1/K), joint", "kmeans_init=True, deferred"
# the findings of their own (a few seeds, diagnosed every eval_every steps)
DEFAULT, SHRUNK, EXPIRY = "library defaults", "kmeans_init=True (joint)", "threshold_ema_dead_code=2"
ORDER = [DEFAULT, SHRUNK, EXPIRY, HEALTHY, NORMAL, UNIFORM]   # the rows of the summary table
TRACKED = [DEFAULT, SHRUNK, EXPIRY]                           # the conditions drawn over training

METRICS = ["utilization", "perplexity", "codebook_centered_cosine_spread", "codebook_euclidean_spread",
           "mode_entropy", "clusters_covered", "embed_effective_dim", "codebook_effective_dim", "recon_error"]
HISTORY_PANELS = [("perplexity", "Perplexity"), ("embed_effective_dim", "Embeddings' eff. dim."),
                  ("recon_error", "Reconstruction MSE")]

# what `vqstudy diagnose` reads, as save_tokenizer names it, and where its transcript goes for the how-to page
DIAGNOSE_ARGS = ["diagnose", "tokenizer.pt", "--embeddings", "embeddings.npy", "--labels", "labels.npy"]
TRANSCRIPT = "book/_generated/diagnose-vector-quantize.txt"


@dataclass(frozen=True)
class Parameters(nbk.RunParameters):
    """Chapter 7's parameters; the full profile trains a disjoint set of seeds four times longer."""
    secondary_seeds: list[int] = param([0, 1], check_ints, low=0, min_len=1)
    steps: int = param(1500, check_int, low=10)
    codebook_size: int = param(64, check_int, low=2)
    data_dim: int = param(8, check_int, low=2)
    eval_every: int = param(250, check_int)

    def full_profile(self) -> dict[str, Any]:
        return {"seeds": list(range(10, 30)), "secondary_seeds": list(range(10, 15)), "steps": 4 * self.steps}


@dataclass(frozen=True)
class Condition:
    """One way of running the library's quantizer, and on which seeds it is trained."""
    options: dict[str, Any]                          # keyword arguments of VectorQuantize
    warmup_steps: int                                # plain-autoencoder steps before quantizing (deferred)
    codebook_init: tuple[str, float | None] | None   # the study's init written into the codebook, if any
    seeds: list[int]
    eval_every: int                                  # steps between two diagnoses of the whole data set

    def record(self) -> dict[str, Any]:
        """The condition as the results file records it."""
        return {"options": self.options, "warmup_steps": self.warmup_steps, "codebook_init": self.codebook_init,
                "seeds": self.seeds}


def base_config(params: Parameters) -> RunConfig:
    """The chapter-2 run every condition shares; only the quantizer is the library's."""
    return RunConfig().replace(data={"dim": params.data_dim}, model={"latent_dim": params.data_dim},
                               quantizer={"codebook_size": params.codebook_size},
                               train={"steps": params.steps, "device": params.device})


def conditions(params: Parameters) -> dict[str, Condition]:
    """The six conditions in the order they are trained: the findings of their own (diagnosed over
    training), then the arms of C1 (diagnosed at the end only, which is all the claim needs)."""
    secondary, seeds, steps = params.secondary_seeds, params.seeds, params.steps
    return {
        DEFAULT: Condition({}, 0, None, secondary, params.eval_every),
        SHRUNK: Condition({"kmeans_init": True}, 0, None, secondary, params.eval_every),
        EXPIRY: Condition({"threshold_ema_dead_code": 2}, 0, None, secondary, params.eval_every),
        HEALTHY: Condition({"kmeans_init": True}, steps // 2, None, seeds, steps),
        NORMAL: Condition({}, 0, ("normal", 1e-3), seeds, steps),
        UNIFORM: Condition({}, 0, ("uniform", None), seeds, steps),
    }


def data_description(params: Parameters) -> str:
    """The mixture every run trains on, in one line."""
    return gaussian_mixture(dim=params.data_dim).description


@dataclass
class Runs:
    """Every run of the chapter."""
    history: pd.DataFrame   # one row per diagnosis: condition, seed, step and the metrics
    final: pd.DataFrame     # one row per run: condition, seed and its last diagnosis
    kept: dict[str, Any]    # the first defaults run's encoder, decoder, quantizer and data (saved for the CLI)


def run_conditions(params: Parameters) -> Runs:
    """Train every (condition, seed). The first defaults run is trained in this process, keeping its modules
    for the command-line section; the others in ``params.workers`` processes (the library trains one seed at
    a time)."""
    base, conds = base_config(params), conditions(params)
    kept: dict[str, Any] = {}
    first = (DEFAULT, conds[DEFAULT].seeds[0])
    results = {first: train_with_vector_quantize(base.replace(train={"seed": first[1]}), conds[DEFAULT].options,
                                                 conds[DEFAULT].eval_every, keep_modules=kept)}
    jobs = [(name, seed) for name, c in conds.items() for seed in c.seeds if (name, seed) != first]
    runs = [(base.replace(train={"seed": seed}), conds[name].options, conds[name].eval_every,
             conds[name].warmup_steps, conds[name].codebook_init) for name, seed in jobs]
    results |= dict(zip(jobs, train_many_with_vector_quantize(runs, workers=params.workers)))
    history = pd.concat([frame.assign(condition=n, seed=s) for (n, s), (frame, _) in results.items()],
                        ignore_index=True)
    final = pd.DataFrame([{"condition": n, "seed": s, **last} for (n, s), (_, last) in results.items()])
    return Runs(history, final, kept)


def runs_description(runs: Runs, params: Parameters) -> str:
    return f"{len(runs.final)} runs of {params.steps} steps, K = {params.codebook_size}"


def show_summary(final: pd.DataFrame, params: Parameters) -> None:
    """The final diagnostics of each condition, mean ± 95% interval over its seeds."""
    show_table(summary_table(final, metrics=METRICS).loc[ORDER], index_label="VectorQuantize",
               caption=f"Mean ± 95% interval over {len(params.seeds)} seeds (C1 arms) or "
                       f"{len(params.secondary_seeds)} seeds (the others).")


def history_figure(history: pd.DataFrame, codebook_size: int) -> None:
    """Perplexity, the embeddings' effective dimension and the reconstruction error over training, for the
    conditions diagnosed along the way: what a per-batch or end-of-training look would miss."""
    fig, axes = style.figure(1, 3, panel_height=2.3)
    for ax, (metric, title) in zip(axes, HISTORY_PANELS):
        plots.metric_lines(ax, history, "step", metric, hue="condition", hue_order=TRACKED, ylabel="")
        ax.set_title(title)
    axes[0].axhline(codebook_size, ls="--", c=style.REFERENCE, lw=1)
    axes[2].set_yscale("log")
    style.legend_from(axes[0], fig, ncol=2)
    style.show(fig)


def condition_means(final: pd.DataFrame) -> pd.DataFrame:
    """The mean of each metric per condition (rows), what the prose and the results file quote."""
    return final.groupby("condition")[METRICS].mean()


def c1_values(final: pd.DataFrame) -> dict[str, tuple[dict[int, float], dict[int, float]]]:
    """C1's primary tests: each small init's perplexity against the deferred kmeans_init control, per seed."""
    control = by_seed(final, "perplexity", condition=HEALTHY)
    return {"C1-normal": (by_seed(final, "perplexity", condition=NORMAL), control),
            "C1-uniform": (by_seed(final, "perplexity", condition=UNIFORM), control)}


def c1_evidence(means: pd.DataFrame) -> str:
    """C1's secondary measurement in words: the arms' code usage (shown beside the verdict, never voting)."""
    return (f"With vector-quantize-pytorch (EMA codebook, its defaults otherwise) and the study's small inits written "
            f"into its codebook: utilization {means.loc[NORMAL, 'utilization']:.0%} (normal), "
            f"{means.loc[UNIFORM, 'utilization']:.0%} (uniform) vs {means.loc[HEALTHY, 'utilization']:.0%} (deferred "
            f"kmeans_init). The library's default init is a separate finding of the chapter.")


def c1_numbers(means: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The mean perplexity and utilization of C1's arms, recorded with its verdict."""
    return {n: {k: means.loc[n, k] for k in ("perplexity", "utilization")} for n in (NORMAL, UNIFORM, HEALTHY)}


def work_ratio(params: Parameters) -> float:
    """The full profile's training work over this profile's: its primary seeds times its steps."""
    full = params.full_profile()
    return nbk.full_profile_work_ratio(params.profile, len(full["seeds"]) / len(params.seeds),
                                       full["steps"] / params.steps)


def results_numbers(params: Parameters, means: pd.DataFrame) -> dict[str, Any]:
    """What the results file records beside the verdict: the work ratio, the means per condition, the
    conditions and the shared run config."""
    return {"full_profile_work_ratio": work_ratio(params),
            "summary": means.to_dict(orient="index"),
            "conditions": {name: c.record() for name, c in conditions(params).items()},
            "config": base_config(params).to_dict()}


def library_defaults(params: Parameters) -> dict[str, float]:
    """The library's own defaults the prose states: its default codebook's bound at this K and dimension
    (kaiming-uniform), its EMA decay and its commitment weight."""
    from vector_quantize_pytorch import VectorQuantize

    signature = inspect.signature(VectorQuantize).parameters
    book = VectorQuantize(dim=params.data_dim, codebook_size=params.codebook_size).codebook
    return {"bound": float(book.abs().max()), "decay": signature["decay"].default,
            "commitment": signature["commitment_weight"].default}


def chapter_text(c1: Verdict, means: pd.DataFrame, history: pd.DataFrame, params: Parameters) -> dict[str, str]:
    """Every number and verdict word chapter 7's prose states, as text from this execution (glued)."""
    tests = {t["key"]: t for t in c1.primary}
    ci = lambda t: f"{t['low']:.2f}–{t['high']:.2f}"  # noqa: E731
    library = library_defaults(params)
    early = history[history.condition == DEFAULT].groupby("step")["perplexity"].mean()
    return {
        "c1_verdict": c1.verdict, "c1_stability": f"{c1.stability:.2f}", "n_seeds": str(len(params.seeds)),
        "n_secondary": str(len(params.secondary_seeds)), "K": str(params.codebook_size), "dim": str(params.data_dim),
        "c1_normal": f"{tests['C1-normal']['effect']:.2f}", "c1_normal_ci": ci(tests["C1-normal"]),
        "c1_uniform": f"{tests['C1-uniform']['effect']:.2f}", "c1_uniform_ci": ci(tests["C1-uniform"]),
        "c1_threshold": f"{tests['C1-normal']['threshold']:g}",
        "ppl_normal": f"{means.loc[NORMAL, 'perplexity']:.1f}",
        "ppl_uniform": f"{means.loc[UNIFORM, 'perplexity']:.1f}",
        "ppl_healthy": f"{means.loc[HEALTHY, 'perplexity']:.1f}",
        "default_bound": f"{library['bound']:.3f}", "default_decay": f"{library['decay']:g}",
        "default_commitment": f"{library['commitment']:g}",
        "default_ppl_first": f"{early.iloc[0]:.1f}", "default_step_first": str(early.index[0]),
        "default_ppl_second": f"{early.iloc[1]:.1f}", "default_step_second": str(early.index[1]),
        "default_ppl_last": f"{early.iloc[-1]:.1f}", "default_step_last": str(early.index[-1]),
        "default_util": f"{means.loc[DEFAULT, 'utilization']:.0%}",
        "default_spread": f"{means.loc[DEFAULT, 'codebook_euclidean_spread']:.2f}",
        "default_eff_dim": f"{means.loc[DEFAULT, 'embed_effective_dim']:.3g}",
        "shrunk_ppl": f"{means.loc[SHRUNK, 'perplexity']:.1f}", "shrunk_mse": f"{means.loc[SHRUNK, 'recon_error']:.3g}",
        "shrunk_ccos": f"{means.loc[SHRUNK, 'codebook_centered_cosine_spread']:.2f}",
        "healthy_mse": f"{means.loc[HEALTHY, 'recon_error']:.3g}",
        "healthy_ccos": f"{means.loc[HEALTHY, 'codebook_centered_cosine_spread']:.2f}",
        "expiry_ppl": f"{means.loc[EXPIRY, 'perplexity']:.1f}",
    }


def save_for_diagnose(kept: dict[str, Any], folder: str | Path) -> list[str]:
    """Save the kept run's quantizer, its encoder's outputs on the whole data set and the labels where
    ``vqstudy diagnose`` reads them, and return that command's arguments (run in ``folder``)."""
    save_tokenizer(kept["vq"], kept["encoder"], kept["data"].x, folder, kept["data"].labels)
    return list(DIAGNOSE_ARGS)
