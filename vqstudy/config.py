"""Validated, JSON round-tripping run configurations.

Every result records the exact config that made it, so a config must be a
plain value: small dataclasses with literal fields, checked on construction.
An invalid field raises ``ValueError`` naming the field, the bad value and
what is allowed, before anything is trained.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

DATASETS = ("gaussian_mixture", "digits", "mnist5k", "cifar10")
MODEL_KINDS = ("mlp", "conv")
ACTIVATIONS = ("relu", "gelu", "tanh")
INITS = ("normal", "uniform", "kmeans", "data")
INIT_SOURCES = ("encoder", "inputs")
UPDATES = ("loss", "ema")
QUANTIZER_KINDS = ("vq", "fsq")
REPARAMS = ("none", "affine", "linear")
DISTANCES = ("euclidean", "cosine")
GRADIENTS = ("straight_through", "rotation")
# QuantizerConfig fields that only say how the codebook is initialized; every other field is a
# keyword argument of VectorQuantizer (VectorQuantizer.from_config), so a new field is added once
INIT_FIELDS = ("init", "init_scale", "init_source", "kmeans_iters")
OPTION_FIELDS = ("codebook_size", "update", "restart_threshold", "kind", "fsq_levels", "reparam", "distance",
                 "lookup_dim", "gradient")  # the arguments of quantizer_option_problem
# the fields that switch a collapse remedy on (off at their defaults: the plain quantizer)
REMEDY_FIELDS = ("update", "restart_threshold", "kind", "fsq_levels", "reparam", "distance", "lookup_dim",
                 "gradient")
SCHEDULES = ("joint", "deferred")
DEVICES = ("cpu", "cuda")


def _fail(section: str, name: str, value: Any, allowed: str) -> None:
    raise ValueError(f"invalid {section}.{name}={value!r}: {allowed}")


def _check_choice(section: str, name: str, value: Any, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        _fail(section, name, value, "allowed values are " + ", ".join(repr(c) for c in choices))


def _check_int(section: str, name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(section, name, value, f"must be an integer >= {low}")
    if value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        _fail(section, name, value, f"must be an integer {rng}")


def _check_float(section: str, name: str, value: Any, low: float, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        _fail(section, name, value, "must be a finite number")
    bad_low = value <= low if low_open else value < low
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high or value in (float("inf"), float("-inf")):
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        hi = "inf" if high is None else repr(high)
        _fail(section, name, value, f"must lie in {left}{low!r}, {hi}{right}")


def quantizer_option_problem(codebook_size: int, update: str, restart_threshold: float, kind: str,
                             fsq_levels: tuple[int, ...], reparam: str, distance: str,
                             lookup_dim: int | None, gradient: str) -> tuple[str, Any, str] | None:
    """(field, value, why) for the first combination of remedies that makes no sense, else None.

    One rule set for :class:`QuantizerConfig` and :class:`vqstudy.quantize.VectorQuantizer`.
    """
    if kind == "fsq":
        if not fsq_levels:
            return "fsq_levels", fsq_levels, "kind='fsq' needs the levels per dimension, e.g. [8, 5, 5, 5]"
        if math.prod(fsq_levels) != codebook_size:
            return ("codebook_size", codebook_size,
                    f"kind='fsq' has an implicit codebook of prod(fsq_levels)={math.prod(fsq_levels)} codes; "
                    "set codebook_size to that")
        fixed = {"update": (update, "loss"), "restart_threshold": (restart_threshold, 0.0),
                 "reparam": (reparam, "none"), "distance": (distance, "euclidean"),
                 "lookup_dim": (lookup_dim, None), "gradient": (gradient, "straight_through")}
        for name, (value, only) in fixed.items():
            if value != only:
                return name, value, ("kind='fsq' has no codebook to update, restart, reparameterize, search "
                                     f"or rotate onto; must be {only!r}")
        return None
    if fsq_levels:
        return "fsq_levels", fsq_levels, "levels apply only to kind='fsq'; must be empty for kind='vq'"
    if update == "ema" and reparam != "none":
        return ("update", update, f"EMA sets each code to the mean of its vectors, which reparam={reparam!r} "
                "(a learned map of the codes) contradicts; use update='loss'")
    if restart_threshold > 0 and reparam == "linear":
        return ("restart_threshold", restart_threshold,
                "reparam='linear' (SimVQ) keeps its base codebook frozen, so dead codes cannot be restarted; must be 0")
    return None


class _Section:
    """Shared JSON round-trip for the config dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        if not isinstance(data, dict):
            raise ValueError(f"invalid {cls.SECTION}: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown field(s) in {cls.SECTION}: {', '.join(unknown)}; "
                f"allowed fields are {', '.join(sorted(known))}")
        return cls(**data)


@dataclass(frozen=True)
class DataConfig(_Section):
    """Which data set; for the synthetic mixture, its shape.

    The paper publishes only "10 isotropic Gaussians, 1,000 points each";
    the std and the mean placement are ours: means ~ N(0, mean_scale^2 I).
    """
    SECTION = "data"
    name: str = "gaussian_mixture"
    n_clusters: int = 10
    n_per_cluster: int = 1000
    dim: int = 8
    std: float = 1.0
    mean_scale: float = 4.0
    seed: int = 0
    root: str | None = None  # folder of local data (CIFAR-10 batches)
    test_fraction: float = 0.0  # > 0: hold out this stratified share for evaluation


    def __post_init__(self) -> None:
        s = self.SECTION
        _check_choice(s, "name", self.name, DATASETS)
        _check_int(s, "n_clusters", self.n_clusters, 1)
        _check_int(s, "n_per_cluster", self.n_per_cluster, 1)
        _check_int(s, "dim", self.dim, 1)
        _check_float(s, "std", self.std, 0.0, low_open=True)
        _check_float(s, "mean_scale", self.mean_scale, 0.0)
        _check_int(s, "seed", self.seed, 0)
        _check_float(s, "test_fraction", self.test_fraction, 0.0, 1.0, high_open=True)
        if self.name == "cifar10" and not self.root:
            _fail(s, "root", self.root, "cifar10 needs the folder holding the python-version batches")


@dataclass(frozen=True)
class ModelConfig(_Section):
    """Encoder/decoder capacity: depth hidden layers of width units (depth 0 = linear)."""
    SECTION = "model"
    kind: str = "mlp"
    depth: int = 2
    width: int = 128
    latent_dim: int = 16
    activation: str = "relu"
    downsample: int = 1  # conv only: number of stride-2 stages

    def __post_init__(self) -> None:
        s = self.SECTION
        _check_choice(s, "kind", self.kind, MODEL_KINDS)
        _check_int(s, "depth", self.depth, 0)
        _check_int(s, "width", self.width, 1)
        _check_int(s, "latent_dim", self.latent_dim, 1)
        _check_choice(s, "activation", self.activation, ACTIVATIONS)
        _check_int(s, "downsample", self.downsample, 1, 4)


@dataclass(frozen=True)
class QuantizerConfig(_Section):
    """The codebook: its size, how it is initialized and how it is updated.

    ``init_scale`` is the std for ``normal`` and the half-width for
    ``uniform``; ``None`` means the textbook defaults (1.0 and 1/K).
    ``init_source`` says which vectors ``kmeans``/``data`` inits see: the
    encoder's outputs or the raw inputs (then latent_dim must equal the input
    dimension).

    The remedies for codebook collapse besides EMA, restart and deferred
    quantization (defaults: none of them, the plain quantizer):
    ``reparam='affine'`` (codes = scale * raw + shift, per dimension, Huh et
    al. 2023), ``reparam='linear'`` (SimVQ: frozen base codebook C, codes =
    C W, Zhu et al. 2024), ``distance='cosine'`` and/or ``lookup_dim`` (the
    search on l2-normalized codes in a projected space, ViT-VQGAN),
    ``gradient='rotation'`` (the rotation trick, Fifty et al. 2024), and
    ``kind='fsq'`` with ``fsq_levels`` (finite scalar quantization, Mentzer
    et al. 2024; codebook_size must be prod(fsq_levels), and the init fields
    are not used: FSQ has no codebook to initialize).
    """
    SECTION = "quantizer"
    codebook_size: int = 64
    beta: float = 0.25
    update: str = "loss"
    ema_decay: float = 0.99
    init: str = "kmeans"
    init_scale: float | None = None
    init_source: str = "encoder"
    kmeans_iters: int = 20
    restart_threshold: float = 0.0  # dead-code restart off when 0
    restart_every: int = 100
    chunk_size: int = 8192
    kind: str = "vq"
    fsq_levels: tuple[int, ...] = ()
    reparam: str = "none"
    distance: str = "euclidean"
    lookup_dim: int | None = None  # None: search in the encoder's space, no projection
    gradient: str = "straight_through"

    def __post_init__(self) -> None:
        s = self.SECTION
        _check_int(s, "codebook_size", self.codebook_size, 1)
        _check_float(s, "beta", self.beta, 0.0)
        _check_choice(s, "update", self.update, UPDATES)
        _check_float(s, "ema_decay", self.ema_decay, 0.0, 1.0, low_open=True, high_open=True)
        _check_choice(s, "init", self.init, INITS)
        if self.init_scale is not None:
            _check_float(s, "init_scale", self.init_scale, 0.0, low_open=True)
        _check_choice(s, "init_source", self.init_source, INIT_SOURCES)
        _check_int(s, "kmeans_iters", self.kmeans_iters, 0)
        _check_float(s, "restart_threshold", self.restart_threshold, 0.0)
        _check_int(s, "restart_every", self.restart_every, 1)
        _check_int(s, "chunk_size", self.chunk_size, 1)
        _check_choice(s, "kind", self.kind, QUANTIZER_KINDS)
        if not isinstance(self.fsq_levels, (list, tuple)) or isinstance(self.fsq_levels, str):
            _fail(s, "fsq_levels", self.fsq_levels, "must be a list of integers >= 3")
        object.__setattr__(self, "fsq_levels", tuple(self.fsq_levels))  # JSON lists compare equal after a round trip
        for level in self.fsq_levels:
            # a level of 2 cannot be centred by FSQ's bound (vector-quantize-pytorch refuses it too)
            _check_int(s, "fsq_levels", level, 3)
        _check_choice(s, "reparam", self.reparam, REPARAMS)
        _check_choice(s, "distance", self.distance, DISTANCES)
        if self.lookup_dim is not None:
            _check_int(s, "lookup_dim", self.lookup_dim, 1)
        _check_choice(s, "gradient", self.gradient, GRADIENTS)
        problem = quantizer_option_problem(**self.module_kwargs(only=OPTION_FIELDS))
        if problem is not None:
            _fail(s, *problem)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "fsq_levels": list(self.fsq_levels)}  # as JSON gives it back

    def module_kwargs(self, only: Iterable[str] | None = None) -> dict[str, Any]:
        """Keyword arguments of :class:`vqstudy.quantize.VectorQuantizer` (every field but the init ones)."""
        names = [f.name for f in dataclasses.fields(self) if f.name not in INIT_FIELDS]
        return {n: getattr(self, n) for n in names if only is None or n in only}


@dataclass(frozen=True)
class TrainConfig(_Section):
    """Optimisation and schedule.

    ``steps`` is the whole budget. ``deferred`` spends its first
    ``warmup_steps`` as a plain autoencoder, then (if ``reinit_at_switch``)
    k-means the codebook on the trained encoder's outputs and trains with VQ
    for the rest. ``joint`` quantizes from step 0 (``warmup_steps`` must be 0).
    """
    SECTION = "train"
    schedule: str = "joint"
    steps: int = 2000
    warmup_steps: int = 0
    reinit_at_switch: bool = True
    batch_size: int = 256
    lr: float = 1e-3
    eval_every: int = 250
    seed: int = 0
    threads: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        s = self.SECTION
        _check_choice(s, "schedule", self.schedule, SCHEDULES)
        _check_int(s, "steps", self.steps, 1)
        _check_int(s, "warmup_steps", self.warmup_steps, 0)
        if not isinstance(self.reinit_at_switch, bool):
            _fail(s, "reinit_at_switch", self.reinit_at_switch, "must be true or false")
        if self.schedule == "joint" and self.warmup_steps != 0:
            _fail(s, "warmup_steps", self.warmup_steps, "must be 0 for schedule='joint' (joint never runs unquantized)")
        if self.schedule == "deferred" and not 0 < self.warmup_steps < self.steps:
            _fail(s, "warmup_steps", self.warmup_steps,
                  f"schedule='deferred' needs 0 < warmup_steps < steps={self.steps}")
        _check_int(s, "batch_size", self.batch_size, 1)
        _check_float(s, "lr", self.lr, 0.0, low_open=True)
        _check_int(s, "eval_every", self.eval_every, 1)
        _check_int(s, "seed", self.seed, 0)
        _check_int(s, "threads", self.threads, 1, 256)
        _check_choice(s, "device", self.device, DEVICES)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    SECTIONS = {"data": DataConfig, "model": ModelConfig, "quantizer": QuantizerConfig, "train": TrainConfig}

    def __post_init__(self) -> None:
        for name, cls in self.SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"invalid {name}: expected {cls.__name__}, got {type(getattr(self, name)).__name__}")
        image_data = self.data.name != "gaussian_mixture"
        if self.model.kind == "conv" and not image_data:
            raise ValueError("invalid model.kind='conv': the conv model needs image data "
                             f"(data.name in {DATASETS[1:]}), got data.name={self.data.name!r}")
        if self.quantizer.init_source == "inputs":
            if self.model.kind != "mlp" or self.data.name != "gaussian_mixture" \
                    or self.model.latent_dim != self.data.dim:
                raise ValueError(
                    "invalid quantizer.init_source='inputs': needs an mlp on the gaussian_mixture "
                    f"with model.latent_dim == data.dim (got {self.model.latent_dim} vs {self.data.dim})")
        if self.quantizer.kind == "fsq" and self.train.schedule == "deferred" and self.train.reinit_at_switch:
            raise ValueError("invalid train.reinit_at_switch=True: quantizer.kind='fsq' has no codebook to "
                             "re-initialize at the switch; set it to false")

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name).to_dict() for name in self.SECTIONS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        if not isinstance(data, dict):
            raise ValueError(f"invalid run config: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.SECTIONS))
        if unknown:
            raise ValueError(f"unknown section(s) in run config: {', '.join(unknown)}; "
                             f"allowed sections are {', '.join(cls.SECTIONS)}")
        return cls(**{name: sec.from_dict(data.get(name, {})) for name, sec in cls.SECTIONS.items()})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: dict[str, Any]) -> "RunConfig":
        """Copy with some fields changed, e.g. ``cfg.replace(train={"seed": 1})``."""
        merged = self.to_dict()
        for section, fields_ in changes.items():
            if section not in self.SECTIONS:
                raise ValueError(f"unknown section {section!r}; allowed sections are {', '.join(self.SECTIONS)}")
            merged[section].update(fields_)
        return RunConfig.from_dict(merged)


# --- the trainings chapter 3 compares -------------------------------------------------------------

TRAININGS = ("autoencoder", "joint", "deferred")


def schedule_change(training: str, steps: int, warmup_steps: int = 0) -> dict[str, Any]:
    """The ``train`` section for one of the trainings chapter 3 compares at the same budget of ``steps``.

    ``joint``: VQ from step 0. ``deferred``: ``warmup_steps`` as a plain autoencoder, then VQ. ``autoencoder``:
    no VQ at all, as a deferred run whose warm-up is the whole budget (one VQ step follows, and the
    evaluation that ends the warm-up, ``vqstudy.tables.evaluation(run, 'autoencoder')``, is the plain
    autoencoder's).
    """
    if training not in TRAININGS:
        raise ValueError(f"invalid training={training!r}: allowed values are {', '.join(TRAININGS)}")
    _check_int("train", "steps", steps, 1)
    if training == "joint":
        return {"schedule": "joint", "steps": steps, "warmup_steps": 0}
    if training == "autoencoder":
        return {"schedule": "deferred", "steps": steps + 1, "warmup_steps": steps, "eval_every": steps}
    if not 0 < warmup_steps < steps:
        _fail("train", "warmup_steps", warmup_steps, f"training='deferred' needs 0 < warmup_steps < steps={steps}")
    return {"schedule": "deferred", "steps": steps, "warmup_steps": warmup_steps}


# --- command-line integer arguments (shared by every subcommand) ------------------------------------

def int_at_least(low: int, what: str):
    """An argparse ``type``: an integer >= ``low``, with a message naming what was expected."""
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value
    return parse


positive_int = int_at_least(1, "a positive integer")
seed_int = int_at_least(0, "a non-negative integer seed")


def merge_changes(*changes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Several change sets for :meth:`RunConfig.replace` as one, merged section by section (later ones win).

    Lets a chapter compose a condition from named parts (a data set, a starting codebook, a remedy, a
    seed) instead of spelling out every combination; chapter 8 crosses them all.
    """
    out: dict[str, dict[str, Any]] = {}
    for change in changes:
        if not isinstance(change, dict):
            raise ValueError(f"invalid change {change!r}: expected a mapping of section -> fields")
        for section, fields_ in change.items():
            if section not in RunConfig.SECTIONS:
                raise ValueError(f"unknown section {section!r}; allowed sections are {', '.join(RunConfig.SECTIONS)}")
            if not isinstance(fields_, dict):
                raise ValueError(f"invalid change of section {section!r}: expected a mapping of fields, got {fields_!r}")
            out.setdefault(section, {}).update(fields_)
    return out
