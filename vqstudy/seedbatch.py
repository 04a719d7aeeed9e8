"""Several seeds of one configuration trained as one batched computation.

The chapters' models are tiny (an MLP of width 128, a batch of 256 vectors),
so part of a training step is the cost of dispatching a few dozen small
kernels. Stacking S seeds' weights and running each layer as one batched
matrix multiply (``baddbmm``) pays that part once for all S. The arithmetic
remains: measured with ``benchmarks/bench_seedbatch.py`` (300 steps, 2-core
AMD EPYC), ten batched seeds cost about 8x one seed under the pinned kernels,
whose GEMMs run MKL's slowest reproducible branch, and about 6x unpinned.

Each seed keeps its own model, generator, batches, codebook initialization,
EMA and restart state, evaluations and :class:`~vqstudy.train.RunResult`; the
per-seed models' parameters are views into the stacked tensors, so the
evaluations and the deferred schedule's k-means run on them unchanged. Under
the reproducible-numerics mode a batched seed's numbers equal the same seed
trained alone by :func:`vqstudy.train.train`, bit for bit (``tests/
test_seedbatch.py``): a batched multiply computes each slice as the single
multiply does, Adam is elementwise, and each seed's losses are reduced over
its own slice. So a sweep may batch or not without changing any stored number.

Batched: MLP models with the plain quantizer (Euclidean codes, straight-
through gradients, gradient or EMA codebook updates, dead-code restart), both
schedules, on the CPU. :func:`batch_problem` says why any other configuration
falls back to training its seeds one after another. Conv models are not batched
on purpose: chapter 9's tokenizer is bound by its arithmetic, not by dispatch.
One training step on 10x its batch of 128 images costs 11.9-15.1x one step
(median 14.7x over 3 rounds; ``bench_seedbatch.py --model conv``, 2-core AMD
EPYC, unpinned), so ten seeds batched could not cost less than ten run alone.
"""
from __future__ import annotations

import json
import math
import time
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .config import RunConfig
from .data import Dataset, load_dataset, train_test_split
from .models import ACTIVATION_LAYERS
from .repro import adam, environment, make_deterministic
from .train import RunResult, VQAutoencoder, _init_codebook, build_model, evaluate, train

def batch_problem(config: RunConfig) -> str | None:
    """Why ``config``'s seeds cannot be batched (a short reason), or None when they can."""
    q = config.quantizer
    if config.model.kind != "mlp":
        return f"model.kind={config.model.kind!r} (only 'mlp' models are batched)"
    if config.train.device != "cpu":
        return f"train.device={config.train.device!r} (only the CPU path is batched)"
    for name, plain in (("kind", "vq"), ("reparam", "none"), ("distance", "euclidean"),
                        ("lookup_dim", None), ("gradient", "straight_through")):
        if getattr(q, name) != plain:
            return f"quantizer.{name}={getattr(q, name)!r} (batched: {plain!r} only)"
    if config.train.batch_size > q.chunk_size:
        return f"train.batch_size={config.train.batch_size} > quantizer.chunk_size={q.chunk_size}"
    return None


def seed_group_key(config: RunConfig) -> str:
    """Configs with equal keys differ only in their seed and can train as one batch."""
    return json.dumps(config.replace(train={"seed": 0}).to_dict(), sort_keys=True)


def _check_group(configs: Sequence[RunConfig]) -> list[RunConfig]:
    configs = list(configs)
    if not configs:
        raise ValueError("configs must hold at least one RunConfig")
    for c in configs:
        if not isinstance(c, RunConfig):
            raise TypeError(f"configs must be RunConfig objects, got {type(c).__name__}")
    if len({seed_group_key(c) for c in configs}) > 1:
        raise ValueError("configs of one seed batch must differ only in train.seed")
    seeds = [c.train.seed for c in configs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"configs of one seed batch need distinct seeds, got {seeds}")
    return configs


class _StackedModels:
    """S models of one architecture whose parameters and buffers are views into stacked (S, ...) tensors."""

    def __init__(self, models: Sequence[VQAutoencoder]):
        self.models = list(models)
        self.size = len(self.models)
        self.stacked: dict[int, torch.Tensor] = {}   # id(first model's tensor) -> stacked tensor
        self.params: list[torch.Tensor] = []          # in models[0].parameters() order
        named = [dict(m.named_parameters()) for m in self.models]
        for name, first in named[0].items():
            stacked = torch.stack([n[name].detach() for n in named]).requires_grad_(first.requires_grad)
            for s, n in enumerate(named):
                n[name].data = stacked.data[s]
            self.stacked[id(first)] = stacked
            self.params.append(stacked)
        buffers = [dict(m.named_buffers()) for m in self.models]
        for name, first in buffers[0].items():
            stacked = torch.stack([b[name] for b in buffers])
            for s, b in enumerate(buffers):
                b[name].data = stacked[s]
            self.stacked[id(first)] = stacked

    def run(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``module`` of models[0] applied to each seed's slice of ``x`` (S, B, ...), with each seed's weights."""
        if isinstance(module, nn.Sequential):
            for layer in module:
                x = self.run(layer, x)
            return x
        if isinstance(module, nn.Linear):
            weight, bias = self.stacked[id(module.weight)], self.stacked[id(module.bias)]
            return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
        if isinstance(module, nn.Flatten):
            return x.reshape(x.shape[0], x.shape[1], -1)
        if isinstance(module, nn.Unflatten):
            return x.reshape(x.shape[0], x.shape[1], *module.unflattened_size)
        if isinstance(module, ACTIVATION_LAYERS):
            return module(x)
        raise TypeError(f"cannot batch a {type(module).__name__} layer")

    def quantize(self, z: torch.Tensor, generators: Sequence[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
        """(straight-through codes, per-seed VQ loss (S,)) of encoder outputs z (S, B, D), as
        :meth:`VectorQuantizer.forward` computes them seed by seed (EMA and restarts included)."""
        first = self.models[0].quantizer
        book = self.stacked[id(first.codebook)]
        s, k, d = book.shape
        with torch.no_grad():
            frozen = book.detach()
            scores = torch.baddbmm(frozen.pow(2).sum(-1).unsqueeze(1), z.detach(), frozen.transpose(1, 2),
                                   alpha=-2.0)
            idx = scores.argmin(-1)
        offsets = torch.arange(s, device=z.device).unsqueeze(1) * k
        q = F.embedding(idx + offsets, book.reshape(s * k, d))
        if first.training and first.update == "ema":
            for m, zs, ids in zip(self.models, z.detach(), idx):
                m.quantizer._ema_update(zs, ids)
        loss = first.beta * F.mse_loss(z, q.detach(), reduction="none").mean((1, 2))
        if first.update == "loss":
            loss = loss + F.mse_loss(q, z.detach(), reduction="none").mean((1, 2))
        if first.training and first.restart_threshold > 0:
            for m, zs, ids, gen in zip(self.models, z.detach(), idx, generators):
                m.quantizer._maybe_restart(zs, ids, gen)
        return z + (q - z).detach(), loss

    def set_quantizing(self, enabled: bool) -> None:
        for m in self.models:
            m.quantizer.enabled = enabled

    def detached_models(self) -> list[VQAutoencoder]:
        """The models with storage of their own again (the stacked tensors can then be freed)."""
        for m in self.models:
            for t in list(m.parameters()) + list(m.buffers()):
                t.data = t.data.clone()
        return self.models


def train_seeds(configs: Sequence[RunConfig], dataset: Dataset | None = None, progress: bool | None = None,
                eval_dataset: Dataset | None = None) -> list[RunResult]:
    """:func:`vqstudy.train.train` for each config of a seed batch (configs that differ only in
    ``train.seed``), as one batched computation where :func:`batch_problem` allows, else one by one.

    Returns the results in the order of ``configs``; each equals ``train(config)`` under the
    reproducible-numerics mode. ``wall_time`` is the batch's time divided by its size.
    """
    configs = _check_group(configs)
    problem = batch_problem(configs[0])
    if problem is not None or len(configs) == 1:
        return [train(c, dataset, progress, eval_dataset) for c in configs]
    started = time.perf_counter()
    tc = configs[0].train
    ds, eval_ds = dataset, eval_dataset
    if ds is None:
        ds = load_dataset(configs[0].data)
        if eval_ds is None and configs[0].data.test_fraction > 0:
            ds, eval_ds = train_test_split(ds, configs[0].data.test_fraction, seed=configs[0].data.seed)
    eval_ds = eval_ds if eval_ds is not None else ds
    if tuple(eval_ds.x.shape[1:]) != tuple(ds.x.shape[1:]):
        raise ValueError(f"eval_dataset items have shape {tuple(eval_ds.x.shape[1:])}, "
                         f"training items {tuple(ds.x.shape[1:])}")
    x, x_eval, labels = ds.x, eval_ds.x, eval_ds.labels
    deferred = tc.schedule == "deferred"

    generators, models = [], []
    for c in configs:  # each seed built exactly as train() builds it
        generators.append(make_deterministic(c.train.seed, tc.threads))
        model = build_model(c, ds)
        if not deferred or not tc.reinit_at_switch:
            _init_codebook(c, model, x, generators[-1])
        model.quantizer.enabled = not deferred
        models.append(model)
    stack = _StackedModels(models)
    opt = adam([p for p in stack.params if p.requires_grad], lr=tc.lr)

    size = len(configs)
    histories: list[dict[str, list]] = [{"step": [], "phase": [], "loss": [], "recon": [], "vq": []}
                                        for _ in configs]
    evals = [[dict(step=0, **evaluate(m, x_eval, labels))] for m in models]
    status: list[str] = ["ok"] * size
    reasons: list[str | None] = [None] * size
    for s in range(size):
        if not math.isfinite(evals[s][0]["quantization_error"]):
            status[s], reasons[s] = "diverged", "non-finite encoder outputs or codebook at initialization"
    for m in models:
        m.train()
    quantizing = not deferred
    bar = tqdm(total=tc.steps, disable=(None if progress is None else not progress), leave=False,
               desc=f"{tc.schedule} seeds {configs[0].train.seed}..{configs[-1].train.seed}")
    first = models[0]
    for step in range(tc.steps):
        alive = [s for s in range(size) if status[s] == "ok"]
        if not alive:
            break
        if deferred and step == tc.warmup_steps:
            for s in alive:
                if tc.reinit_at_switch:
                    _init_codebook(configs[s], models[s], x, generators[s], kind="kmeans")
            stack.set_quantizing(True)
            quantizing = True
            for s in alive:
                evals[s].append(dict(step=step, **evaluate(models[s], x_eval, labels)))
        batch = torch.stack([x[torch.randint(x.shape[0], (tc.batch_size,), generator=g)] for g in generators])
        z = stack.run(first.encoder, batch)
        if quantizing:
            codes, vq_loss = stack.quantize(z, generators)
        else:
            codes, vq_loss = z, z.new_zeros(size)
        recon = stack.run(first.decoder, codes)
        recon_loss = F.mse_loss(recon, batch, reduction="none").reshape(size, -1).mean(1)
        loss = recon_loss + vq_loss
        values = torch.stack([loss, recon_loss, vq_loss], 1).tolist()
        for s in alive:
            if not math.isfinite(values[s][0]):
                status[s], reasons[s] = "diverged", f"non-finite loss ({values[s][0]}) at step {step}"
        alive = [s for s in alive if status[s] == "ok"]
        opt.zero_grad(set_to_none=True)
        loss[alive].sum().backward()
        opt.step()
        bar.update(1)
        for s in alive:
            h = histories[s]
            h["step"].append(step + 1)
            h["phase"].append("vq" if quantizing else "ae")
            h["loss"].append(values[s][0])
            h["recon"].append(values[s][1])
            h["vq"].append(values[s][2])
        if (step + 1) % tc.eval_every == 0 or step + 1 == tc.steps:
            for s in alive:
                evals[s].append(dict(step=step + 1, **evaluate(models[s], x_eval, labels)))
                if not all(math.isfinite(v) for v in (evals[s][-1]["recon_error"],
                                                      evals[s][-1]["quantization_error"])):
                    status[s], reasons[s] = "diverged", f"non-finite evaluation at step {step + 1}"
    bar.close()
    models = stack.detached_models()
    env: dict[str, Any] = environment()
    wall = (time.perf_counter() - started) / size
    return [RunResult(c, status[s], reasons[s], histories[s], evals[s], env, wall, models[s], ds)
            for s, c in enumerate(configs)]
