"""Chapter 9's experiment: the paper's regime on real images, a convolutional VQ-VAE tokenizer on MNIST-5k.

The synthetic and digits chapters show the mechanism at K <= 512, where the shrunk model's reconstruction
falls clearly behind. Here the tokenizer is large enough for the paper's central observation: a shrunk
codebook hiding behind reconstructions almost as good as a healthy one's. The model: 28x28 digits -> two
stride-2 conv stages -> 7x7 tokens of dimension 16, a codebook learned by gradient (beta 0.25, no EMA, no
restarts), Adam 1e-3, batch 128, evaluated on a held-out fifth of the 5,000 digits.

Two schedules with the same total optimizer steps:

- **shrunk** (the paper's collapse-prone baseline): k-means on the *untrained* encoder's outputs, then
  joint training;
- **deferred**: half the steps as a plain autoencoder, then k-means on the *trained* encoder, then VQ.

A :class:`Plan` fixes the codebook sizes, seeds and steps; :data:`PLANS` holds the two profiles. The full
plan is run once (``vqstudy realimages``), unpinned, into :data:`FULL_STORE`; its records carry their
config, code revision and environment, and ``tests/test_real_images.py`` fails when the stored records no
longer match the configs this module builds. The quick plan is small enough for the notebook's own run
under the reproducible numerics; it illustrates, the full plan is judged.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd
import torch

from .. import notebook as nbk
from .. import numerics, plots, style
from ..claims import DEFERRED_MNIST, SHRUNK_MNIST, paired_effect
from ..config import RunConfig, _check_float, _check_int, positive_int
from ..data import Dataset, held_out_split
from ..executors import ExecutorSpec, run_jobs
from ..io import read_json, write_atomic
from ..notebook import check_int, check_ints, param
from ..quantize import kmeans, nearest_code
from ..repro import git_revision
from ..sweep import SweepSummary, load_runs, run_sweep
from ..tables import by_seed, fmt_effect, fmt_value, median_interval, median_strings, median_table
from ..train import RunResult, train

SCHEDULES = (SHRUNK_MNIST, DEFERRED_MNIST)
FULL_STORE = Path("results") / "09_real_images_full"   # relative to the repository root
JUDGED_SIZE = 1024   # the K of the C6 and C8 tests on real images, fixed before the full run


@dataclass(frozen=True)
class Plan:
    """Which runs one profile of the chapter trains: every (K, schedule, seed), ``steps`` steps each."""
    codebook_sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    steps: int
    width: int = 32
    batch_size: int = 128
    warmup_fraction: float = 0.5

    def __post_init__(self) -> None:
        for name in ("codebook_sizes", "seeds"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ValueError(f"invalid {name}={values!r}: expected distinct integers, at least one")
        for k in self.codebook_sizes:
            _check_int("plan", "codebook_sizes", k, 2)
        for s in self.seeds:
            _check_int("plan", "seeds", s, 0)
        _check_int("plan", "steps", self.steps, 10)
        _check_int("plan", "width", self.width, 1)
        _check_int("plan", "batch_size", self.batch_size, 1)
        _check_float("plan", "warmup_fraction", self.warmup_fraction, 0.0, 1.0, low_open=True, high_open=True)


# K = 8,192 (2^13) joined the "full" plan after its first 6 runs were stored (seeds 0-5 of the shrunk start); C5
# compares it with K = 256, as the registry's "largest K" says (fixed before any of those runs trained).
# "full": the judged plan, run once into FULL_STORE. "quick": the notebook's own illustration, small enough
# for the reproducible numerics on 2 CPU cores (conv layers run at about a third of their usual speed there).
PLANS = {
    "quick": Plan(codebook_sizes=(JUDGED_SIZE,), seeds=(0,), steps=400),
    "full": Plan(codebook_sizes=(256, JUDGED_SIZE, 4096, 8192), seeds=tuple(range(10)), steps=1500),
}


@dataclass(frozen=True)
class Parameters(nbk.Parameters):
    """Chapter 9's parameters: the notebook's own runs (an illustration; the stored full run is judged)."""
    codebook_sizes: list[int] = param(list(PLANS["quick"].codebook_sizes), check_ints, low=2)
    seeds: list[int] = param(list(PLANS["quick"].seeds), check_ints, low=0)
    steps: int = param(PLANS["quick"].steps, check_int, low=10)
    n_examples: int = param(8, check_int)
    workers: int = param(2, check_int)

    def full_profile(self) -> dict[str, Any]:
        return {"steps": PLANS["full"].steps}   # the illustration at the judged run's length

    @property
    def plan(self) -> Plan:
        """The notebook's own runs."""
        return Plan(tuple(self.codebook_sizes), tuple(self.seeds), self.steps)


def tokenizer_config(plan: Plan, codebook_size: int, schedule: str, seed: int) -> RunConfig:
    """The run of one (K, schedule, seed) of ``plan``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"invalid schedule={schedule!r}: allowed values are {SCHEDULES}")
    config = RunConfig().replace(
        data={"name": "mnist5k", "test_fraction": 0.2},
        model={"kind": "conv", "width": plan.width, "depth": 1, "latent_dim": 16, "downsample": 2},
        quantizer={"codebook_size": codebook_size, "init": "kmeans", "update": "loss", "beta": 0.25},
        train={"steps": plan.steps, "eval_every": plan.steps, "batch_size": plan.batch_size, "lr": 1e-3,
               "seed": seed})
    if schedule == DEFERRED_MNIST:
        config = config.replace(train={"schedule": "deferred", "warmup_steps": round(plan.warmup_fraction * plan.steps)})
    return config


# Secondary arms at JUDGED_SIZE, on the full plan's seeds and steps: the other collapse-prone start (a
# small-scale random codebook, C1's) and the best codebook-side remedy of chapter 8 that keeps training
# joint (EMA codebook + dead-code restart, from the same k-means start as the shrunk baseline). Reported
# beside the two schedules with paired intervals; they judge no claim.
SMALL_INIT = "normal(1e-3), joint"
EMA_RESTART = "EMA + restart, k-means start"
REMEDIES = {
    SMALL_INIT: {"quantizer": {"init": "normal", "init_scale": 1e-3}},
    EMA_RESTART: {"quantizer": {"update": "ema", "ema_decay": 0.99, "restart_threshold": 1.0, "restart_every": 100}},
}
ARMS = (*SCHEDULES, *REMEDIES)


def remedy_configs(plan: Plan) -> dict[tuple[int, str, int], RunConfig]:
    """The secondary arms' runs by (K, arm, seed): the shrunk baseline's config with the arm's changes; seed by
    seed, so that a run cut short has every arm on its first seeds."""
    return {(JUDGED_SIZE, arm, seed): tokenizer_config(plan, JUDGED_SIZE, SHRUNK_MNIST, seed).replace(**changes)
            for seed in plan.seeds for arm, changes in REMEDIES.items()}


def arm_of(config: RunConfig) -> str:
    """Which of :data:`ARMS` a run of this chapter is."""
    q = config.quantizer
    if q.update == "ema":
        return EMA_RESTART
    if q.init == "normal":
        return SMALL_INIT
    return DEFERRED_MNIST if config.train.schedule == "deferred" else SHRUNK_MNIST


def plan_configs(plan: Plan) -> dict[tuple[int, str, int], RunConfig]:
    """Every run of ``plan`` by (K, schedule, seed), in the order a sweep runs them: the judged K first (a full
    run cut short can still judge C6 and C8), both schedules of it, then the other sizes in increasing order."""
    sizes = sorted(plan.codebook_sizes, key=lambda k: (k != JUDGED_SIZE, k))
    return {(k, s, seed): tokenizer_config(plan, k, s, seed) for k in sizes for s in SCHEDULES for seed in plan.seeds}


PARTS = ("tokenizers", "remedies")   # the full run's two parts: the two schedules at every K; the secondary arms


def part_configs(part: str) -> list[RunConfig]:
    """The runs of one part of the full run."""
    if part not in PARTS:
        raise ValueError(f"invalid part={part!r}: allowed values are {PARTS}")
    plan = PLANS["full"]
    return list((plan_configs(plan) if part == "tokenizers" else remedy_configs(plan)).values())


def run_full(root: Path, workers: int | None = None, progress: bool | None = None) -> dict[str, SweepSummary]:
    """Train every run of the full run not yet in ``root / FULL_STORE`` (resumable: stored runs are kept), part
    by part, and record when, where and how long in the part's provenance file when it trained anything."""
    summaries = {}
    for part in PARTS:
        started = time.time()
        summary = run_sweep(part_configs(part), Path(root) / FULL_STORE, workers=workers, progress=progress)
        if summary.done or summary.failed:
            write_provenance(root, started, time.time(), summary.done, workers, part)
        summaries[part] = summary
    return summaries


PROVENANCE = {"tokenizers": "provenance.json", "remedies": "provenance_remedies.json"}   # beside the records


def write_provenance(root: Path, started: float, finished: float, runs: int, workers: int | None,
                     part: str = "tokenizers") -> Path:
    """Add a session (when, UTC; where; from which code revision it trained ``runs`` runs) to a part's record.

    A part trained over several sessions (a run resumed, a codebook size added) keeps every session under
    ``sessions``; the top-level fields are the latest session's, except ``started`` (the first session's),
    ``runs_trained`` and ``wall_time_s`` (sums over the sessions)."""
    stamp = lambda t: datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")  # noqa: E731
    status = numerics.status()
    session = {"started": stamp(started), "finished": stamp(finished), "wall_time_s": round(finished - started),
               "runs_trained": runs, "workers": workers, "cpu_model": status["cpu_model"], "cores": status["cores"],
               "reproducible_numerics": status["reproducible_numerics"], "git_revision": git_revision(),
               "device": "cpu"}
    path = Path(root) / FULL_STORE / PROVENANCE[part]
    previous = read_json(path) if path.exists() else None
    sessions = ([] if previous is None else previous.get("sessions", [previous])) + [session]
    record = {**session, "started": sessions[0]["started"], "sessions": sessions,
              "runs_trained": sum(r["runs_trained"] for r in sessions),
              "wall_time_s": sum(r["wall_time_s"] for r in sessions)}
    write_atomic(path, json.dumps(record, indent=1, sort_keys=True))
    return path


def read_provenance(root: Path, part: str = "tokenizers") -> dict[str, Any]:
    """A part's :data:`PROVENANCE` record (fails, naming the file, when it is missing)."""
    return read_json(Path(root) / FULL_STORE / PROVENANCE[part])


# --- the chapter's measurements ---------------------------------------------------------------------

PATCH = 4   # pixels per token side: 28x28 images, 7x7 tokens
MEASURES = ("perplexity", "codes_used", "recon_error", "psnr")   # what the chapter reports of each run


def psnr(mse: float, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of pixels in [0, peak] (the image-tokenizer literature's scale)."""
    return 10.0 * math.log10(peak ** 2 / mse)


def r_squared(mse: float, images: torch.Tensor) -> float:
    """1 - MSE / (mean per-pixel variance of ``images``): the share of the pixels' variance reconstructed."""
    flat = images.reshape(len(images), -1).double()
    return 1.0 - mse / float(flat.var(0, unbiased=False).mean())


def class_mean_mse(train_images: Dataset, test_images: Dataset) -> float:
    """MSE of the trivial reconstructor that outputs each held-out image's class mean (from the training
    images): a tokenizer whose error approaches this one has kept little beyond the digit's class."""
    x, labels = train_images.x.double(), train_images.labels
    means = torch.stack([x[labels == c].mean(0) for c in range(int(labels.max()) + 1)])
    return float(((test_images.x.double() - means[test_images.labels]) ** 2).mean())


def patches(images: torch.Tensor, size: int = PATCH) -> torch.Tensor:
    """Non-overlapping size x size patches of (N, C, H, W) images as rows (N * H/size * W/size, C*size*size):
    one row per token position, the raw-pixel counterpart of the encoder's tokens."""
    n, c, h, w = images.shape
    if h % size or w % size:
        raise ValueError(f"images of {h}x{w} pixels do not split into {size}x{size} patches")
    return images.unfold(2, size, size).unfold(3, size, size).permute(0, 2, 3, 1, 4, 5).reshape(-1, c * size * size)


def patch_kmeans_mse(train_images: Dataset, test_images: Dataset, n_codes: int, seed: int = 0) -> float:
    """MSE of k-means with ``n_codes`` codes on raw 4x4 pixel patches (no encoder, no decoder): what a
    tokenizer using as many codes as the shrunk model reaches without learning anything."""
    if isinstance(n_codes, bool) or not isinstance(n_codes, int) or n_codes < 1:
        raise ValueError(f"invalid n_codes={n_codes!r}: must be an integer >= 1")
    centers = kmeans(patches(train_images.x), n_codes, seed=seed)
    test = patches(test_images.x)
    return float(((test - centers[nearest_code(test, centers)]).double() ** 2).mean())


def run_frame(runs: Iterable[RunResult]) -> pd.DataFrame:
    """One row per run: K, schedule, seed and the held-out measures the chapter reports."""
    rows = []
    for run in runs:
        c, final = run.config, run.final
        k = c.quantizer.codebook_size
        rows.append({"K": k, "schedule": arm_of(c),
                     "seed": c.train.seed, "status": run.status, "perplexity": final.get("perplexity", math.nan),
                     "codes_used": round(final.get("utilization", math.nan) * k) if run.status == "ok" else math.nan,
                     "recon_error": final.get("recon_error", math.nan), "wall_time": run.wall_time,
                     "git_revision": run.environment.get("git_revision"),
                     "cpu_model": run.environment.get("cpu_model"),
                     "reproducible_numerics": run.environment.get("reproducible_numerics")})
    frame = pd.DataFrame(rows)
    frame["psnr"] = [psnr(m) if m > 0 else math.nan for m in frame["recon_error"]]
    return frame


def load_full(root: Path) -> pd.DataFrame:
    """The stored full-profile runs as :func:`run_frame` rows; fails (naming the missing runs) unless every
    run of the full plan, as this module builds it today, is stored."""
    return run_frame(load_runs(plan_configs(PLANS["full"]).values(), Path(root) / FULL_STORE))


def load_remedies(root: Path) -> pd.DataFrame:
    """The stored secondary arms (:data:`REMEDIES`) as :func:`run_frame` rows; fails, naming the missing runs,
    unless every one is stored."""
    return run_frame(load_runs(part_configs("remedies"), Path(root) / FULL_STORE))


def arms_frame(full: pd.DataFrame, remedies: pd.DataFrame) -> pd.DataFrame:
    """Every arm at :data:`JUDGED_SIZE`: the two schedules of the full run and the secondary arms."""
    return pd.concat([full[full["K"] == JUDGED_SIZE], remedies], ignore_index=True)


def arms_table(arms: pd.DataFrame) -> pd.DataFrame:
    """Per arm: median [95% interval] of each measure, and its perplexity and MSE over deferred
    quantization's, paired by seed (geometric mean [95% interval])."""
    table = full_table(arms).droplevel("K")
    table = table.loc[[a for a in ARMS if a in table.index]]
    for metric, name in (("perplexity", "Perplexity / deferred"), ("recon_error", "MSE / deferred")):
        table[name] = [fmt_effect(_pair_ratio(arms, metric, JUDGED_SIZE, arm, DEFERRED_MNIST))
                       if arm != DEFERRED_MNIST else "(reference)" for arm in table.index]
    return table


def _compared(effect: tuple[float, float, float], fewer: str, more: str, same: str) -> str:
    """A paired ratio to deferred in words: which side of 1 its interval lies on, and the ratio."""
    word = fewer if effect[2] < 1 else more if effect[1] > 1 else same
    return f"{word} ({fmt_effect(effect)} times deferred's)"


def arms_text(arms: pd.DataFrame, run_record: Mapping[str, Any]) -> dict[str, str]:
    """The prose about the secondary arms, from the stored runs (glued)."""
    ratio = lambda arm, metric: _pair_ratio(arms, metric, JUDGED_SIZE, arm, DEFERRED_MNIST)  # noqa: E731
    codes = lambda arm, metric: _compared(ratio(arm, metric), "fewer", "more", "about as many")  # noqa: E731
    error = lambda arm: _compared(ratio(arm, "recon_error"), "less", "more", "about as much")  # noqa: E731
    ema = REMEDIES[EMA_RESTART]["quantizer"]
    n_seeds = arms.loc[arms["schedule"] == EMA_RESTART, "seed"].nunique()
    prov = provenance(arms[arms["schedule"].isin(list(REMEDIES))])
    return {
        "arms_init": f"codes drawn from a normal distribution of standard deviation {REMEDIES[SMALL_INIT]['quantizer']['init_scale']:g}",
        "arms_settings": f"EMA decay {ema['ema_decay']:g}; every {ema['restart_every']} steps, codes used fewer than "
                         f"{ema['restart_threshold']:g} time(s) since the last check move onto random embeddings of the batch",
        "arms_provenance": f"{n_seeds} seeds per arm, {PLANS['full'].steps:,} steps: {prov['runs']} runs from code "
                           f"revision {', '.join(r[:10] for r in prov['git_revisions'])} on {', '.join(prov['cpu_models'])}, "
                           f"{'with' if all(prov['reproducible_numerics']) else 'without'} the reproducible numerics; "
                           f"{run_record['runs_trained']} of them trained {_sessions(run_record)}.",
        "arms_text": f"At K = {JUDGED_SIZE:,}, the small-scale random init trained jointly uses "
                     f"{codes(SMALL_INIT, 'perplexity')} effective codes, with {error(SMALL_INIT)} reconstruction error. "
                     f"EMA + dead-code restart from the shrunk baseline's start uses {codes(EMA_RESTART, 'perplexity')} "
                     f"effective codes, with {error(EMA_RESTART)} reconstruction error.",
    }


def claim_values(frame: pd.DataFrame) -> dict[str, tuple[dict[int, float], dict[int, float]]]:
    """The (treatment by seed, control by seed) of each primary test this chapter judges: C5 across K,
    C6 and C8 at :data:`JUDGED_SIZE`."""
    arm = lambda metric, k, schedule: by_seed(frame, metric, K=k, schedule=schedule)  # noqa: E731

    def shrinkage(k: int) -> dict[int, float]:   # shrunk / deferred perplexity, per seed
        shrunk = arm("perplexity", k, SHRUNK_MNIST)
        return {s: shrunk[s] / v for s, v in arm("perplexity", k, DEFERRED_MNIST).items()}

    k = JUDGED_SIZE
    return {"C5-growth": (shrinkage(frame["K"].max()), shrinkage(frame["K"].min())),
            "C6-mse": (arm("recon_error", k, SHRUNK_MNIST), arm("recon_error", k, DEFERRED_MNIST)),
            "C6-perplexity": (arm("perplexity", k, SHRUNK_MNIST), arm("perplexity", k, DEFERRED_MNIST)),
            "C8-perplexity": (arm("perplexity", k, DEFERRED_MNIST), arm("perplexity", k, SHRUNK_MNIST)),
            "C8-mse": (arm("recon_error", k, DEFERRED_MNIST), arm("recon_error", k, SHRUNK_MNIST))}


def reconstruction_strips(own: pd.DataFrame, examples: Mapping[tuple[int, str, int], dict[str, Any]],
                          plan: Plan) -> dict[str, torch.Tensor]:
    """The reconstruction figure's rows: held-out digits, then each schedule's reconstructions of them
    (first K and seed of ``plan``), labelled with its codes used and MSE."""
    k, seed = plan.codebook_sizes[0], plan.seeds[0]
    strips = {"held-out digits": examples[(k, SHRUNK_MNIST, seed)]["originals"]}
    for schedule, name in ((SHRUNK_MNIST, "shrunk"), (DEFERRED_MNIST, "deferred")):
        row = own[(own["K"] == k) & (own["schedule"] == schedule) & (own["seed"] == seed)].iloc[0]
        label = f"{name}: {row['codes_used']:.0f} codes used, MSE {row['recon_error']:.4f}"
        strips[label] = examples[(k, schedule, seed)]["reconstructions"]
    return strips


def reconstruction_figure(strips: Mapping[str, torch.Tensor]) -> Any:
    """One row of images per entry of :func:`reconstruction_strips`."""
    fig, axes = style.figure(len(strips), 1, panel_height=0.75, squeeze=False)
    plots.image_strips(axes[:, 0], strips)
    return fig


OWN_COLUMNS = {"perplexity": "perplexity", "codes_used": "codes used", "recon_error": "recon. MSE", "psnr": "PSNR (dB)"}
FULL_COLUMNS = {"perplexity": "Perplexity", "codes_used": "Codes used", "recon_error": "Recon. MSE", "psnr": "PSNR (dB)"}


def own_table(own: pd.DataFrame) -> pd.DataFrame:
    """The notebook's own runs, one row per (K, schedule, seed)."""
    return own.set_index(["K", "schedule", "seed"])[list(OWN_COLUMNS)].rename(columns=OWN_COLUMNS)


def full_table(full: pd.DataFrame) -> pd.DataFrame:
    """The full run: median [95% interval] of each measure per (K, schedule)."""
    table = median_table(full, list(MEASURES), by=["K", "schedule"])
    return median_strings(table.drop(columns="runs", level=0)).rename(columns=FULL_COLUMNS)


def size_figure(full: pd.DataFrame) -> Any:
    """Perplexity (against the line perplexity = K) and held-out MSE against K, per schedule."""
    fig, axes = style.figure(1, 2, panel_height=2.5)
    for ax, metric, label in ((axes[0], "perplexity", "perplexity (log)"), (axes[1], "recon_error", "held-out MSE")):
        plots.metric_lines(ax, full, "K", metric, hue="schedule", hue_order=list(SCHEDULES), logx=True,
                           xlabel="codebook size K", ylabel=label)
    sizes = sorted(full["K"].unique())
    axes[0].plot(sizes, sizes, ls="--", c=style.REFERENCE, lw=1)
    axes[0].set_yscale("log")
    for ax in axes:
        ax.get_legend().remove()
    handles, names = axes[0].get_legend_handles_labels()
    ref, ref_name = style.reference_handle("perplexity = K")
    style.shared_legend(fig, handles + [ref], names + [ref_name])
    return fig


def held_out_images() -> tuple[Dataset, Dataset]:
    """(training part, held-out part) of MNIST-5k as every run of the chapter splits it."""
    return held_out_split(next(iter(plan_configs(PLANS["full"]).values())).data)


def baselines(full: pd.DataFrame, train_images: Dataset, test_images: Dataset) -> dict[str, float]:
    """Held-out MSE at :data:`JUDGED_SIZE`: the two tokenizers (medians over the seeds) beside the trivial
    reconstructors, the class-mean image and k-means on raw patches with as many codes as each uses."""
    at_k = full[full["K"] == JUDGED_SIZE]
    n_codes = {s: int(round(at_k.loc[at_k["schedule"] == s, "codes_used"].median())) for s in SCHEDULES}
    median_mse = lambda s: float(at_k.loc[at_k["schedule"] == s, "recon_error"].median())  # noqa: E731
    return {
        f"shrunk tokenizer ({n_codes[SHRUNK_MNIST]} codes used)": median_mse(SHRUNK_MNIST),
        f"deferred tokenizer ({n_codes[DEFERRED_MNIST]} codes used)": median_mse(DEFERRED_MNIST),
        "class-mean image": class_mean_mse(train_images, test_images),
        **{f"k-means on {PATCH}×{PATCH} patches, {n_codes[s]} codes": patch_kmeans_mse(train_images, test_images, n_codes[s])
           for s in SCHEDULES},
    }


def judge(claims: Any, full: pd.DataFrame, baselines: Mapping[str, float]) -> dict[str, Any]:
    """Judge C5, C6 and C8 on the full run with ``claims`` (a :class:`vqstudy.notebook.Claims`)."""
    values = claim_values(full)
    return {c: claims.judge(c, {key: v for key, v in values.items() if key.startswith(c)}, evidence)
            for c, evidence in claim_evidence(full, baselines).items()}


def baseline_table(mse: Mapping[str, float], images: torch.Tensor) -> pd.DataFrame:
    """MSE, PSNR and R^2 of each named reconstructor's held-out MSE (``images``: the held-out images)."""
    return pd.DataFrame({"MSE": list(mse.values()), "PSNR (dB)": [psnr(m) for m in mse.values()],
                         "R²": [r_squared(m, images) for m in mse.values()]}, index=list(mse))


def summary(frame: pd.DataFrame) -> dict[str, Any]:
    """The full run as the results file records it: per (K, schedule), the median [interval] of each
    measure, the run times, and where and from which code revision the runs were computed."""
    out: dict[str, Any] = {}
    for (k, schedule), cell in frame.groupby(["K", "schedule"], sort=True):
        out[f"K={k} | {schedule}"] = {m: list(median_interval(cell[m].to_numpy())) for m in MEASURES}
        out[f"K={k} | {schedule}"]["wall_time_s"] = list(median_interval(cell["wall_time"].to_numpy()))
    out["provenance"] = provenance(frame)
    return out


def provenance(frame: pd.DataFrame) -> dict[str, Any]:
    """Where the runs of ``frame`` were computed: code revisions, CPU models, numerics mode, total run time."""
    return {"git_revisions": sorted(set(map(str, frame["git_revision"]))),
            "cpu_models": sorted(set(map(str, frame["cpu_model"]))),
            "reproducible_numerics": sorted(set(map(bool, frame["reproducible_numerics"]))),
            "runs": len(frame), "total_run_time_s": round(float(frame["wall_time"].sum()), 1)}


def _pair_ratio(frame: pd.DataFrame, metric: str, k: int, treatment: str, control: str) -> tuple[float, float, float]:
    return paired_effect(by_seed(frame, metric, K=k, schedule=treatment), by_seed(frame, metric, K=k, schedule=control))


def _median(frame: pd.DataFrame, metric: str, k: int, schedule: str) -> float:
    return float(frame.loc[(frame["K"] == k) & (frame["schedule"] == schedule), metric].median())


def claim_evidence(frame: pd.DataFrame, baselines: Mapping[str, float]) -> dict[str, str]:
    """Each judged claim's secondary measurements, in words (shown beside the verdict, never voting)."""
    sizes = sorted(frame["K"].unique())
    k = JUDGED_SIZE
    per_k = "; ".join(f"K = {size:,}: {fmt_effect(_pair_ratio(frame, 'perplexity', size, SHRUNK_MNIST, DEFERRED_MNIST))}"
                      for size in sizes)
    used = lambda schedule: ", ".join(f"{fmt_value(_median(frame, 'codes_used', size, schedule))}" for size in sizes)  # noqa: E731
    mse_per_k = "; ".join(f"K = {size:,}: {fmt_effect(_pair_ratio(frame, 'recon_error', size, SHRUNK_MNIST, DEFERRED_MNIST))}"
                          for size in sizes)
    names = list(baselines)
    return {
        "C5": f"shrunk / deferred perplexity per K, {per_k}; median codes used at K = "
              f"{', '.join(f'{size:,}' for size in sizes)}: shrunk {used(SHRUNK_MNIST)}, deferred {used(DEFERRED_MNIST)}",
        "C6": f"shrunk / deferred MSE per K, {mse_per_k}; held-out MSE at K = {k:,} (medians): "
              + ", ".join(f"{name} {fmt_value(baselines[name])}" for name in names),
        "C8": f"at K = {k:,}, median codes used: deferred {fmt_value(_median(frame, 'codes_used', k, DEFERRED_MNIST))}, "
              f"shrunk {fmt_value(_median(frame, 'codes_used', k, SHRUNK_MNIST))} of {k:,}; median PSNR "
              f"{fmt_value(_median(frame, 'psnr', k, DEFERRED_MNIST))} vs {fmt_value(_median(frame, 'psnr', k, SHRUNK_MNIST))} dB",
    }


def _test(verdict: Any, key: str) -> dict[str, Any]:
    return next(t for t in verdict.primary if t["key"] == key)


def _tested(verdict: Any, key: str) -> str:
    """'0.21 [0.18, 0.25] (below 1/3: holds)': a primary test's effect, its side and its outcome."""
    t = _test(verdict, key)
    bound = "1/3" if abs(t["threshold"] - 1 / 3) < 1e-12 else f"{t['threshold']:g}"
    return f"{fmt_effect((t['effect'], t['low'], t['high']))} (the paper's side: {t['side']} {bound}; {t['outcome']})"


def _and(items: Iterable[str]) -> str:
    """'a, b and c'."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _sessions(run_record: Mapping[str, Any]) -> str:
    """When a part of the full run trained: one span, or its sessions' count and overall span."""
    n, started, finished = len(run_record.get("sessions", [run_record])), run_record["started"], run_record["finished"]
    return f"from {started} to {finished}" if n == 1 else f"in {n} sessions between {started} and {finished}"


def chapter_text(frame: pd.DataFrame, verdicts: Mapping[str, Any], baselines: Mapping[str, float],
                 images: torch.Tensor, own: pd.DataFrame, plan: Plan, run_record: Mapping[str, Any]) -> dict[str, str]:
    """Every number and verdict word chapter 9's prose states, as text from this execution (glued)."""
    k, sizes = JUDGED_SIZE, sorted(frame["K"].unique())
    ratio = {size: _pair_ratio(frame, "perplexity", size, SHRUNK_MNIST, DEFERRED_MNIST) for size in sizes}
    mse_ratio = {size: _pair_ratio(frame, "recon_error", size, SHRUNK_MNIST, DEFERRED_MNIST) for size in sizes}
    mse = mse_ratio[k]
    better = [size for size in sizes if mse_ratio[size][2] < 1.0]
    r2 = {name: r_squared(value, images) for name, value in baselines.items()}
    shrunk_name, deferred_name, class_name, patch_shrunk, patch_deferred = list(baselines)
    prov = provenance(frame)
    beats = lambda a, b: "above" if r2[a] > r2[b] else "below"  # noqa: E731
    shrinkage = lambda runs, size: (_median(runs, "perplexity", size, SHRUNK_MNIST)  # noqa: E731
                                    / _median(runs, "perplexity", size, DEFERRED_MNIST))
    own_ratio = {size: shrinkage(own, size) for size in plan.codebook_sizes}
    same_seeds = frame[frame["seed"].isin(plan.seeds)]
    full_seed = {size: shrinkage(same_seeds, size) for size in plan.codebook_sizes if size in sizes}
    seeds_text = ", ".join(map(str, plan.seeds))
    return {
        "judged_K": f"{k:,}",
        "full_plan": f"K = {_and(f'{size:,}' for size in PLANS['full'].codebook_sizes)}, "
                     f"{len(PLANS['full'].seeds)} seeds per cell, {PLANS['full'].steps:,} steps per run "
                     f"({len(plan_configs(PLANS['full'])):,} runs)",
        "illustration_text": f"The notebook's own run trains seed(s) {seeds_text} at K = "
                            f"{', '.join(f'{size:,}' for size in plan.codebook_sizes)}, {plan.steps:,} steps per run.",
        "provenance": f"The full run: {prov['runs']} runs from code revision {', '.join(r[:10] for r in prov['git_revisions'])}, "
                      f"trained {_sessions(run_record)} on "
                      f"{', '.join(prov['cpu_models'])}, {run_record['workers']} runs at a time on one core each, "
                      f"{'with' if all(prov['reproducible_numerics']) else 'without'} the reproducible numerics "
                      f"(median {fmt_value(frame['wall_time'].median(), 2)} s per run).",
        "answer": f"At K = {k:,}, the shrunk tokenizer's perplexity is {fmt_effect(ratio[k])} times deferred "
                  f"quantization's, while its held-out MSE is {fmt_effect(mse)} times deferred's (ratios per seed, "
                  f"geometric mean [95% interval]). C6, a shrunk codebook behind nearly unchanged reconstructions: "
                  f"{verdicts['C6'].verdict}; C5, the shrinkage grows with K: {verdicts['C5'].verdict}; "
                  f"C8, deferred quantization fixes it at no cost: {verdicts['C8'].verdict}.",
        "C5_verdict": verdicts["C5"].verdict, "C6_verdict": verdicts["C6"].verdict, "C8_verdict": verdicts["C8"].verdict,
        "C5_text": "The shrunk / deferred perplexity ratio is " + ", ".join(
            f"{fmt_effect(ratio[size])} at K = {size:,}" for size in sizes)
            + f". Its growth from the smallest to the largest K, the primary test: {_tested(verdicts['C5'], 'C5-growth')}. "
            + "The shrunk / deferred MSE ratio at the same sizes: " + ", ".join(
                f"{fmt_effect(mse_ratio[size])}" for size in sizes)
            + (f"; it lies below 1 (the shrunk tokenizer reconstructing better, the paper's small-K crossover) at K = "
               + ", ".join(f"{size:,}" for size in better) if better else
               "; at no size does its interval lie below 1, so the paper's small-K crossover (the shrunk tokenizer "
               "reconstructing better) does not appear here") + ".",
        "C6_text": f"At K = {k:,}: perplexity {_tested(verdicts['C6'], 'C6-perplexity')}; reconstruction MSE "
                   f"{_tested(verdicts['C6'], 'C6-mse')}. The paper's ImageNet-100 numbers: perplexity "
                   f"×1/5.7 with MSE ×1.19 (MaskGIT), ×1/2.5 with MSE ×1.17 (VAR).",
        "C8_text": f"At K = {k:,}, deferred against shrunk: perplexity {_tested(verdicts['C8'], 'C8-perplexity')}; "
                   f"reconstruction MSE {_tested(verdicts['C8'], 'C8-mse')}.",
        "baseline_text": f"The shrunk tokenizer reconstructs R² {r2[shrunk_name]:.3f} of the held-out pixels' variance "
                         f"(deferred: {r2[deferred_name]:.3f}), {beats(shrunk_name, class_name)} the class-mean image "
                         f"({r2[class_name]:.3f}) and {beats(shrunk_name, patch_shrunk)} k-means on raw 4×4 patches with "
                         f"as many codes ({r2[patch_shrunk]:.3f}; with deferred's number of codes {r2[patch_deferred]:.3f}).",
        "own_text": "The shrunk / deferred perplexity ratio of the notebook's own runs (" + ", ".join(
            f"K = {size:,}: {own_ratio[size]:.2f}" for size in plan.codebook_sizes) + f", {plan.steps:,} steps)"
            + (", against " + ", ".join(f"{full_seed[size]:.2f}" for size in full_seed)
               + f" for the same seed(s) in the full run ({PLANS['full'].steps:,} steps)" if full_seed else "")
            + ". It illustrates; it is not judged.",
    }


def results_numbers(params: Parameters, full: pd.DataFrame, own: pd.DataFrame, baseline_table: pd.DataFrame,
                    root: Path, remedies: pd.DataFrame | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(numbers, timings) of the chapter's results file: the full run's tokenizers and, once all are stored, its
    secondary arms (summary and provenance), the notebook's own runs, the baselines; the own runs' wall time as a
    timing."""
    numbers = {"full_profile_work_ratio": nbk.full_profile_work_ratio(params.profile, work_ratio(params.plan)),
               "full_run": {**summary(full), "run": read_provenance(root)},
               "own_run": own[["K", "schedule", "seed", *MEASURES]].to_dict(orient="records"),
               "baselines": baseline_table.to_dict(orient="index")}
    if remedies is not None:
        numbers["remedies"] = {**summary(remedies), "run": read_provenance(root, "remedies")}
    return numbers, {"own_run_wall_s": round(float(own["wall_time"].sum()), 1)}


def work_ratio(plan: Plan) -> float:
    """Optimizer steps the notebook's full profile trains over those of ``plan`` (the reproducibility page's
    estimate), with the stored full run complete: its own runs are a separate job (``vqstudy realimages``),
    timed in its provenance record."""
    steps = lambda p: len(p.codebook_sizes) * len(SCHEDULES) * len(p.seeds) * p.steps  # noqa: E731
    return steps(Parameters.from_notebook({"profile": "full"}).plan) / steps(plan)


# --- the notebook's own runs: trained where the reconstructions can be shown ------------------------

def train_with_examples(config_dict: dict[str, Any], n_examples: int) -> dict[str, Any]:
    """Train one run and return its result with the first ``n_examples`` held-out images and their
    reconstructions (a worker's job: the trained model itself stays in the worker)."""
    config = RunConfig.from_dict(config_dict)
    train_images, test_images = held_out_split(config.data)
    run = train(config, train_images, progress=False, eval_dataset=test_images)
    x = test_images.x[:n_examples]
    with torch.no_grad():
        recon = run.model.reconstruct(x).clamp(0, 1)
    return {"result": run.to_dict(), "originals": x.numpy(), "reconstructions": recon.numpy()}


def run_with_examples(plan: Plan, n_examples: int = 8, workers: int = 2,
                      executor: ExecutorSpec = None) -> tuple[list[RunResult], dict[tuple[int, str, int], dict]]:
    """Train every run of ``plan`` (``workers`` processes, or the executor / ``$VQSTUDY_SCHEDULER``) and
    return the results and, by (K, schedule, seed), the example images and their reconstructions."""
    configs = plan_configs(plan)
    jobs = [(key, (config.to_dict(), n_examples)) for key, config in configs.items()]
    done = {key: future.result() for key, future in run_jobs(train_with_examples, jobs, executor, workers)}
    results = [RunResult.from_dict(done[key]["result"]) for key in configs]
    examples = {key: {"originals": done[key]["originals"], "reconstructions": done[key]["reconstructions"]}
                for key in configs}
    return results, examples


# --- command line ---------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vqstudy realimages``."""
    parser.add_argument("--root", default=".", metavar="DIR",
                        help=f"the repository root; runs are stored under DIR/{FULL_STORE} (default: .)")
    parser.add_argument("--workers", type=positive_int, help="local worker processes (default min(2, cores))")


def command(args: argparse.Namespace) -> int:
    """Run chapter 9's full profile (every K, ten seeds) into its resumable store, for the book to judge."""
    root = Path(args.root)
    if not (root / "notebooks").is_dir():
        raise ValueError(f"--root {root}: not the study's repository root (it has no notebooks/ folder)")
    return 1 if any(summary.failed for summary in run_full(root, workers=args.workers).values()) else 0
