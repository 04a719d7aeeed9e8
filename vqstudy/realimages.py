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
config, code revision and environment, and ``tests/test_realimages.py`` fails when the stored records no
longer match the configs this module builds. The quick plan is small enough for the notebook's own run
under the reproducible numerics; it illustrates, the full plan is judged.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .claims import DEFERRED_MNIST, SHRUNK_MNIST
from .config import RunConfig, _check_float, _check_int
from .sweep import SweepSummary, run_sweep

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


PLANS = {
    "quick": Plan(codebook_sizes=(JUDGED_SIZE,), seeds=(0,), steps=400),
    "full": Plan(codebook_sizes=(256, JUDGED_SIZE, 4096), seeds=tuple(range(10)), steps=1500),
}


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


def plan_configs(plan: Plan) -> dict[tuple[int, str, int], RunConfig]:
    """Every run of ``plan`` by (K, schedule, seed), in the order they are run: the judged K first and both
    schedules of a seed together, so that a run cut short still holds complete pairs of the judged K."""
    sizes = sorted(plan.codebook_sizes, key=lambda k: (k != JUDGED_SIZE, k))
    return {(k, s, seed): tokenizer_config(plan, k, s, seed) for k in sizes for seed in plan.seeds for s in SCHEDULES}


def run_full(root: Path, workers: int | None = None, progress: bool | None = None) -> SweepSummary:
    """Train every run of the full plan not yet in ``root / FULL_STORE`` (resumable: stored runs are kept)."""
    return run_sweep(plan_configs(PLANS["full"]).values(), Path(root) / FULL_STORE, workers=workers,
                     progress=progress)
