"""One training function for every schedule of the study.

``joint``: quantize from step 0, codebook initialized by the configured init
(for ``kmeans``, on the *untrained* encoder's outputs: the paper's baseline).
``deferred``: train ``warmup_steps`` as a plain autoencoder (quantizer
bypassed), then k-means the codebook on the *trained* encoder's outputs, then
train with VQ for the remaining steps.
"""
from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .config import REMEDY_FIELDS, QuantizerConfig, RunConfig
from .data import Dataset, load_dataset, train_test_split
from .diagnostics import diagnose
from .models import build_autoencoder
from .quantize import VectorQuantizer, initial_codebook
from .repro import adam, environment, make_deterministic

EVAL_BATCH = 4096


class VQAutoencoder(nn.Module):
    """encoder -> vector quantizer -> decoder."""

    def __init__(self, encoder: nn.Module, quantizer: VectorQuantizer, decoder: nn.Module):
        super().__init__()
        self.encoder, self.quantizer, self.decoder = encoder, quantizer, decoder

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        z = self.encoder(x)
        q = self.quantizer(z, generator)
        return self.decoder(q.quantized), q, z

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous encoder outputs for a whole set, in batches (eval mode)."""
        was_training = self.training
        self.eval()
        out = torch.cat([self.encoder(x[i:i + EVAL_BATCH]) for i in range(0, x.shape[0], EVAL_BATCH)])
        self.train(was_training)
        return out

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        was_training = self.training
        self.eval()
        out = torch.cat([self(x[i:i + EVAL_BATCH])[0] for i in range(0, x.shape[0], EVAL_BATCH)])
        self.train(was_training)
        return out


def build_model(config: RunConfig, dataset: Dataset) -> VQAutoencoder:
    enc, dec = build_autoencoder(config.model, tuple(dataset.x.shape[1:]))
    return VQAutoencoder(enc, VectorQuantizer.from_config(config.quantizer, config.model.latent_dim), dec)


@dataclass
class RunResult:
    """What one run produced, and exactly how it was made."""
    config: RunConfig
    status: str                                  # "ok" or "diverged"
    reason: str | None
    history: dict[str, list]                     # per optimizer step
    evals: list[dict[str, Any]]                  # full diagnostics every eval_every steps
    environment: dict[str, str]
    wall_time: float
    model: VQAutoencoder | None = field(default=None, repr=False, compare=False)
    dataset: Dataset | None = field(default=None, repr=False, compare=False)

    @property
    def final(self) -> dict[str, Any]:
        return self.evals[-1] if self.evals else {}

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "status": self.status, "reason": self.reason,
                "history": self.history, "evals": self.evals, "final": self.final,
                "environment": self.environment, "wall_time": self.wall_time}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunResult":
        return cls(RunConfig.from_dict(data["config"]), data["status"], data["reason"], data["history"],
                   data["evals"], data["environment"], data["wall_time"])


def _codebook_source(config: RunConfig, model: VQAutoencoder, x: torch.Tensor) -> torch.Tensor:
    if config.quantizer.init_source == "inputs":
        return x.reshape(x.shape[0], -1)
    return model.encode(x).reshape(-1, config.model.latent_dim)


def _init_codebook(config: RunConfig, model: VQAutoencoder, x: torch.Tensor, gen: torch.Generator,
                   kind: str | None = None) -> None:
    q = config.quantizer
    if q.kind == "fsq":
        return  # a fixed grid: nothing to initialize
    kind = kind or q.init
    vectors = None
    if kind in ("kmeans", "data"):
        with torch.no_grad():  # into the space the codes live in (the vectors themselves by default)
            vectors = model.quantizer.to_lookup(_codebook_source(config, model, x))
    codes = initial_codebook(kind, q.codebook_size, model.quantizer.code_dim, gen, q.init_scale, vectors,
                             q.kmeans_iters, config.train.seed, q.chunk_size)
    model.quantizer.set_codebook(codes.to(x.device))


@torch.no_grad()
def evaluate(model: VQAutoencoder, x: torch.Tensor, labels: torch.Tensor | None) -> dict[str, Any]:
    """Reconstruction error and the full diagnostics on a fixed evaluation set."""
    z = model.encode(x)
    flat = z.reshape(-1, z.shape[-1])
    codebook = model.quantizer.codes().detach()
    if not (torch.isfinite(flat).all() and torch.isfinite(codebook).all()):
        # a diverged model: report it instead of failing inside the spectra
        return {"recon_error": float("nan"), "quantization_error": float("nan"),
                "quantized": bool(model.quantizer.enabled)}
    idx = model.quantizer.assign(flat)
    recon = model.reconstruct(x)
    out = {"recon_error": float(F.mse_loss(recon, x).item()),
           "quantized": bool(model.quantizer.enabled)}
    out.update(diagnose(flat, idx, codebook, labels,
                        chunk_size=model.quantizer.chunk_size))
    return out


def _step_loss(model: VQAutoencoder, batch: torch.Tensor, gen: torch.Generator):
    """(total loss, reconstruction loss, quantizer output) of one training batch."""
    recon, q, _ = model(batch, gen)
    recon_loss = F.mse_loss(recon, batch)
    return recon_loss + q.loss, recon_loss, q


def train(config: RunConfig, dataset: Dataset | None = None, progress: bool | None = None,
          eval_dataset: Dataset | None = None) -> RunResult:
    """Train one VQ autoencoder as ``config`` says and return its :class:`RunResult`.

    ``dataset`` overrides ``config.data`` (e.g. a train split). Diagnostics are
    measured on ``eval_dataset``; by default on the held-out split when
    ``config.data.test_fraction > 0``, else on the training set itself. ``progress=None`` shows a bar only on an interactive
    terminal.
    """
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
    tc = config.train
    if tc.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("invalid train.device='cuda': no CUDA device is available here; use 'cpu'")
    started = time.perf_counter()
    gen = make_deterministic(tc.seed, tc.threads)
    ds = dataset if dataset is not None else load_dataset(config.data)
    if dataset is None and eval_dataset is None and config.data.test_fraction > 0:
        ds, eval_dataset = train_test_split(ds, config.data.test_fraction, seed=config.data.seed)
    device = torch.device(tc.device)
    x = ds.x.to(device)
    eval_ds = eval_dataset if eval_dataset is not None else ds
    if tuple(eval_ds.x.shape[1:]) != tuple(ds.x.shape[1:]):
        raise ValueError(f"eval_dataset items have shape {tuple(eval_ds.x.shape[1:])}, "
                         f"training items {tuple(ds.x.shape[1:])}")
    x_eval, labels = eval_ds.x.to(device), eval_ds.labels
    model = build_model(config, ds).to(device)

    deferred = tc.schedule == "deferred"
    if not deferred or not tc.reinit_at_switch:
        _init_codebook(config, model, x, gen)
    model.quantizer.enabled = not deferred
    params = [p for p in model.parameters() if p.requires_grad]
    opt = adam(params, lr=tc.lr)

    history: dict[str, list] = {"step": [], "phase": [], "loss": [], "recon": [], "vq": []}
    evals = [dict(step=0, **evaluate(model, x_eval, labels))]
    status, reason = "ok", None
    if not math.isfinite(evals[0]["quantization_error"]):
        status, reason = "diverged", "non-finite encoder outputs or codebook at initialization"
    model.train()
    bar = tqdm(total=tc.steps, disable=(None if progress is None else not progress), leave=False,
               desc=f"{tc.schedule} seed {tc.seed}")
    for step in range(tc.steps if status == "ok" else 0):
        if deferred and step == tc.warmup_steps:
            if tc.reinit_at_switch:
                _init_codebook(config, model, x, gen, kind="kmeans")
            model.quantizer.enabled = True
            evals.append(dict(step=step, **evaluate(model, x_eval, labels)))
        batch = x[torch.randint(x.shape[0], (tc.batch_size,), generator=gen).to(device)]
        loss, recon_loss, q = _step_loss(model, batch, gen)
        value = loss.item()
        if not math.isfinite(value):
            status, reason = "diverged", f"non-finite loss ({value}) at step {step}"
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history["step"].append(step + 1)
        history["phase"].append("vq" if model.quantizer.enabled else "ae")
        history["loss"].append(value)
        history["recon"].append(recon_loss.item())
        history["vq"].append(float(q.loss.item()))
        bar.update(1)
        if (step + 1) % tc.eval_every == 0 or step + 1 == tc.steps:
            evals.append(dict(step=step + 1, **evaluate(model, x_eval, labels)))
            if not all(math.isfinite(v) for v in (evals[-1]["recon_error"], evals[-1]["quantization_error"])):
                status, reason = "diverged", f"non-finite evaluation at step {step + 1}"
                break
    bar.close()
    return RunResult(config, status, reason, history, evals, environment(),
                     time.perf_counter() - started, model, ds)


def plain_counterpart(config: RunConfig) -> RunConfig:
    """``config`` with every collapse remedy of the quantizer off: same K, beta, init, model, data and batches."""
    plain = QuantizerConfig()
    return config.replace(quantizer={name: getattr(plain, name) for name in REMEDY_FIELDS})


def step_cost_ratio(config: RunConfig, blocks: int = 20, steps_per_block: int = 10,
                    dataset: Dataset | None = None) -> dict[str, Any]:
    """A remedy's time per quantized training step as a ratio to the plain quantizer's, measured together.

    Both models (``config`` and :func:`plain_counterpart`) train in alternating blocks of
    ``steps_per_block`` steps, the order flipping each block after one untimed warm-up block each,
    so that load on a shared machine falls on both alike. On the CPU the clock is this process's CPU
    time (other processes' load does not count; wall-clock ratios are returned too); on CUDA it is
    the wall clock after a synchronize. ``ratio`` is the median over blocks of remedy time / plain
    time, ``ratio_low``/``ratio_high`` the distribution-free 95% interval of that median. Only
    quantized steps are timed: deferred quantization's cost is its one-off warm-up and k-means.
    """
    from scipy import stats  # only here: keeps importing vqstudy light

    for name, value in (("blocks", blocks), ("steps_per_block", steps_per_block)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"invalid {name}={value!r}: must be a positive integer")
    tc = config.train
    gen = make_deterministic(tc.seed, tc.threads)
    ds = dataset if dataset is not None else load_dataset(config.data)
    device = torch.device(tc.device)
    x = ds.x.to(device)
    arms = []
    for arm_config in (config, plain_counterpart(config)):
        model = build_model(arm_config, ds).to(device)
        _init_codebook(arm_config, model, x, gen)
        model.train()
        arms.append((model, adam([p for p in model.parameters() if p.requires_grad], lr=tc.lr)))

    def block(model: VQAutoencoder, opt: torch.optim.Optimizer) -> tuple[float, float]:
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(steps_per_block):
            batch = x[torch.randint(x.shape[0], (tc.batch_size,), generator=gen).to(device)]
            loss = _step_loss(model, batch, gen)[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - started
        return wall, (wall if device.type == "cuda" else time.process_time() - cpu_started)

    for arm in arms:
        block(*arm)
    times: list[list[tuple[float, float]]] = [[], []]
    for b in range(blocks):
        for i in ((0, 1) if b % 2 == 0 else (1, 0)):
            times[i].append(block(*arms[i]))
    out: dict[str, Any] = {"clock": "wall" if device.type == "cuda" else "process cpu", "blocks": blocks,
                           "steps_per_block": steps_per_block}
    for prefix, j in (("", 1), ("wall_", 0)):
        ratios = sorted(r[j] / p[j] for r, p in zip(*times))
        rank = int(stats.binom.ppf(0.025, blocks, 0.5))  # order statistics bracketing the median
        out.update({f"{prefix}ratio": statistics.median(ratios),
                    f"{prefix}ratio_low": ratios[max(rank - 1, 0)],
                    f"{prefix}ratio_high": ratios[min(blocks - rank, blocks - 1)],
                    f"{prefix}remedy_s_per_step": statistics.median(r[j] for r in times[0]) / steps_per_block,
                    f"{prefix}plain_s_per_step": statistics.median(p[j] for p in times[1]) / steps_per_block})
    return out


def untrained_model(config: RunConfig, dataset: Dataset) -> VQAutoencoder:
    """The model exactly as :func:`train` (and :func:`vqstudy.seedbatch.train_seeds`) builds it before step 0:
    the untrained encoder that the paper's baseline runs k-means on (chapter 1 measures its outputs).

    The global random state is left as it was (the weights come from a forked torch generator seeded
    with ``config.train.seed``, as ``train`` seeds it); the codebook is not initialized.
    """
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        return build_model(config, dataset)
