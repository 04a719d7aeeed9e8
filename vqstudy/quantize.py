"""A straight-through vector quantizer with the knobs the collapse study turns.

Written here rather than imported: the libraries are slow on CPU and hide
the diagnostics. Nearest-code search uses the ``addmm`` expansion
||x||^2 - 2 x.c + ||c||^2 without the constant ||x||^2, in row chunks so the
distance matrix never exceeds ``chunk_size x K``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def _check_chunk(chunk_size: int) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"invalid chunk_size={chunk_size!r}: must be a positive integer")


def _check_vectors(x: torch.Tensor, codebook: torch.Tensor) -> None:
    if x.ndim != 2 or codebook.ndim != 2:
        raise ValueError(f"expected 2-D vectors and codebook, got shapes {tuple(x.shape)} and {tuple(codebook.shape)}")
    if x.shape[1] != codebook.shape[1]:
        raise ValueError(f"dimension mismatch: vectors have {x.shape[1]}, codes have {codebook.shape[1]}")


def check_finite(name: str, values: torch.Tensor, why: str) -> None:
    """ValueError naming ``name`` (and its first bad rows) when ``values`` holds NaN or Inf."""
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        rows = torch.nonzero(bad.reshape(values.shape[0], -1).any(1)).flatten()[:5].tolist() if values.ndim else []
        raise ValueError(f"invalid {name}: {int(bad.sum())} non-finite value(s) (NaN or Inf)"
                         + (f", first in row(s) {rows}" if rows else "") + f": {why}")


@torch.no_grad()
def nearest_code(x: torch.Tensor, codebook: torch.Tensor, chunk_size: int = 8192,
                 return_distance: bool = False):
    """Index of the nearest code (squared Euclidean) for each row of ``x``.

    Ties go to the lowest index. With ``return_distance`` also returns the
    squared distance to that code (clamped at 0). Both must be floating point
    and finite (a NaN row has no nearest code: ValueError naming the
    argument); when their dtypes differ both are converted to the wider one
    (``torch.promote_types``, e.g. float64 rows against a float32 codebook
    are compared in float64), and the distances come in that dtype.
    """
    _check_chunk(chunk_size)
    _check_vectors(x, codebook)
    for name, t in (("x", x), ("codebook", codebook)):
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
        check_finite(name, t, "a NaN or Inf row has no nearest code")
    if x.dtype != codebook.dtype:
        wide = torch.promote_types(x.dtype, codebook.dtype)
        x, codebook = x.to(wide), codebook.to(wide)
    return _nearest(x, codebook, chunk_size, return_distance)


@torch.no_grad()
def _nearest(x: torch.Tensor, codebook: torch.Tensor, chunk_size: int, return_distance: bool = False):
    """:func:`nearest_code` without the value checks: the training loop's own calls, whose inputs are
    float32 by construction and whose non-finite values are reported as divergence, not raised."""
    _check_chunk(chunk_size)
    c_sq = codebook.pow(2).sum(1)
    idx = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    dist = torch.empty(x.shape[0], dtype=x.dtype, device=x.device) if return_distance else None
    ct = codebook.t()
    for start in range(0, x.shape[0], chunk_size):
        rows = x[start:start + chunk_size]
        partial = torch.addmm(c_sq, rows, ct, alpha=-2.0)  # ||c||^2 - 2 x.c
        if return_distance:
            best, arg = partial.min(1)
            idx[start:start + chunk_size] = arg
            dist[start:start + chunk_size] = (best + rows.pow(2).sum(1)).clamp_min_(0.0)
        else:
            idx[start:start + chunk_size] = partial.argmin(1)
    return (idx, dist) if return_distance else idx


def _scatter_mean_parts(x: torch.Tensor, idx: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-code sums and counts; index_add_ is deterministic under the deterministic flag."""
    sums = torch.zeros(k, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, idx, x)
    counts = torch.zeros(k, dtype=x.dtype, device=x.device).index_add_(
        0, idx, torch.ones_like(idx, dtype=x.dtype))
    return sums, counts


@torch.no_grad()
def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator, chunk_size: int = 8192) -> torch.Tensor:
    """k-means++ seeding: each new center drawn with probability proportional to D(x)^2."""
    n = x.shape[0]
    first = torch.randint(n, (1,), generator=generator, device="cpu").item()
    centers = [x[first]]
    closest = (x - x[first]).pow(2).sum(1)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # every point already sits on a center: take any unused point
            pick = torch.randint(n, (1,), generator=generator, device="cpu").item()
        else:
            probs = (closest / total).double().cpu()
            pick = torch.multinomial(probs, 1, generator=generator).item()
        centers.append(x[pick])
        closest = torch.minimum(closest, (x - x[pick]).pow(2).sum(1))
    return torch.stack(centers)


@torch.no_grad()
def kmeans(x: torch.Tensor, k: int, iters: int = 20, seed: int = 0, chunk_size: int = 8192,
           max_seed_points: int = 20000) -> torch.Tensor:
    """Lloyd's k-means with k-means++ seeding; deterministic for a given seed.

    Seeding runs on at most ``max_seed_points`` rows (a random subset) to keep
    its k sequential passes cheap. An empty cluster is re-seeded with the point
    currently farthest from its center, so all k centers stay in use.
    """
    if x.ndim != 2:
        raise ValueError(f"kmeans expects 2-D vectors, got shape {tuple(x.shape)}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"invalid k={k!r}: must be a positive integer")
    if x.shape[0] < k:
        raise ValueError(f"kmeans needs at least k={k} vectors, got {x.shape[0]}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
        raise ValueError(f"invalid iters={iters!r}: must be an integer >= 0")
    x = x.detach().float()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    seed_rows = x
    if x.shape[0] > max_seed_points:
        pick = torch.randperm(x.shape[0], generator=gen)[:max_seed_points].to(x.device)
        seed_rows = x[pick]
    centers = kmeans_plus_plus(seed_rows, k, gen, chunk_size)
    for _ in range(iters):
        idx, dist = _nearest(x, centers, chunk_size, return_distance=True)
        sums, counts = _scatter_mean_parts(x, idx, k)
        empty = counts == 0
        centers = torch.where(empty[:, None], centers, sums / counts.clamp_min(1)[:, None])
        if empty.any():
            far = torch.argsort(dist, descending=True, stable=True)[: int(empty.sum())]
            centers[empty] = x[far]
    return centers


def initial_codebook(kind: str, k: int, dim: int, generator: torch.Generator,
                     scale: float | None = None, vectors: torch.Tensor | None = None,
                     kmeans_iters: int = 20, seed: int = 0, chunk_size: int = 8192) -> torch.Tensor:
    """A (k, dim) codebook by one of the study's initializations.

    - ``normal``: N(0, scale^2), scale default 1.0
    - ``uniform``: U(-scale, scale), scale default 1/K (the VQ-VAE/VQGAN textbook init)
    - ``kmeans``: k-means on ``vectors`` (k-means++ seeding, ``kmeans_iters`` Lloyd steps)
    - ``data``: k distinct rows of ``vectors`` drawn at random
    """
    if kind == "normal":
        return torch.randn(k, dim, generator=generator) * (1.0 if scale is None else scale)
    if kind == "uniform":
        s = 1.0 / k if scale is None else scale
        return (torch.rand(k, dim, generator=generator) * 2.0 - 1.0) * s
    if kind in ("kmeans", "data"):
        if vectors is None:
            raise ValueError(f"init {kind!r} needs vectors to initialize from")
        vectors = vectors.detach().reshape(-1, dim).float()
        if kind == "kmeans":
            return kmeans(vectors, k, kmeans_iters, seed, chunk_size)
        if vectors.shape[0] < k:
            raise ValueError(f"init 'data' needs at least k={k} vectors, got {vectors.shape[0]}")
        pick = torch.randperm(vectors.shape[0], generator=generator)[:k].to(vectors.device)
        return vectors[pick].clone()
    raise ValueError(f"invalid init={kind!r}: allowed values are 'normal', 'uniform', 'kmeans', 'data'")


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor          # same shape as the input; straight-through gradients
    indices: torch.Tensor | None     # (...,) code per vector; None when bypassed
    loss: torch.Tensor               # codebook + beta * commitment (EMA: beta * commitment)


class VectorQuantizer(nn.Module):
    """Straight-through VQ over the last dimension of its input.

    ``update='loss'`` learns the codebook by the codebook loss ||sg[z] - q||^2;
    ``update='ema'`` moves codes to the running mean of their assigned
    vectors (decay ``ema_decay``, Laplace-smoothed counts). ``enabled=False``
    bypasses quantization (the continuous phase of deferred quantization).
    Dead-code restart (``restart_threshold > 0``) replaces, every
    ``restart_every`` training calls, codes used fewer than that many times
    with random vectors of the current batch.
    """

    def __init__(self, codebook_size: int, dim: int, beta: float = 0.25, update: str = "loss",
                 ema_decay: float = 0.99, chunk_size: int = 8192, restart_threshold: float = 0.0,
                 restart_every: int = 100, eps: float = 1e-5):
        super().__init__()
        if update not in ("loss", "ema"):
            raise ValueError(f"invalid update={update!r}: allowed values are 'loss', 'ema'")
        _check_chunk(chunk_size)
        self.codebook_size, self.dim = codebook_size, dim
        self.beta, self.update, self.ema_decay, self.eps = beta, update, ema_decay, eps
        self.chunk_size = chunk_size
        self.restart_threshold, self.restart_every = restart_threshold, restart_every
        self.enabled = True
        self.codebook = nn.Parameter(torch.zeros(codebook_size, dim), requires_grad=(update == "loss"))
        self.register_buffer("ema_count", torch.ones(codebook_size))
        self.register_buffer("ema_sum", torch.zeros(codebook_size, dim))
        self.register_buffer("usage_since_restart", torch.zeros(codebook_size))
        self.calls_since_restart = 0
        self.restarts = 0  # total codes restarted

    @torch.no_grad()
    def set_codebook(self, codes: torch.Tensor) -> None:
        """Replace the codebook (and reset EMA / restart state to match it)."""
        if codes.shape != self.codebook.shape:
            raise ValueError(f"codebook shape {tuple(codes.shape)} != {tuple(self.codebook.shape)}")
        self.codebook.copy_(codes)
        self.ema_count.fill_(1.0)
        self.ema_sum.copy_(codes)
        self.usage_since_restart.zero_()
        self.calls_since_restart = 0

    def assign(self, flat: torch.Tensor) -> torch.Tensor:
        return _nearest(flat.detach(), self.codebook.detach(), self.chunk_size)

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None) -> QuantizerOutput:
        if not self.enabled:
            return QuantizerOutput(z, None, z.new_zeros(()))
        if z.shape[-1] != self.dim:
            raise ValueError(f"expected last dimension {self.dim}, got {tuple(z.shape)}")
        flat = z.reshape(-1, self.dim)
        idx = self.assign(flat)
        # Quantize with the codebook that chose the indices, then update it (the standard VQ-VAE EMA order):
        # the decoder input and the commitment loss never see this step's EMA move.
        q = F.embedding(idx, self.codebook)  # a copy of the rows; embedding's backward is deterministic
        if self.training and self.update == "ema":
            self._ema_update(flat.detach(), idx)
        commitment = F.mse_loss(flat, q.detach())
        loss = self.beta * commitment
        if self.update == "loss":
            loss = loss + F.mse_loss(q, flat.detach())
        if self.training and self.restart_threshold > 0:
            self._maybe_restart(flat.detach(), idx, generator)
        quantized = flat + (q - flat).detach()  # straight-through estimator
        return QuantizerOutput(quantized.reshape(z.shape), idx.reshape(z.shape[:-1]), loss)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        sums, counts = _scatter_mean_parts(flat, idx, self.codebook_size)
        d = self.ema_decay
        self.ema_count.mul_(d).add_(counts, alpha=1 - d)
        self.ema_sum.mul_(d).add_(sums, alpha=1 - d)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (n + self.codebook_size * self.eps) * n
        self.codebook.copy_(self.ema_sum / smoothed[:, None])

    @torch.no_grad()
    def _maybe_restart(self, flat: torch.Tensor, idx: torch.Tensor, generator: torch.Generator | None) -> None:
        self.usage_since_restart.index_add_(0, idx, torch.ones_like(idx, dtype=self.usage_since_restart.dtype))
        self.calls_since_restart += 1
        if self.calls_since_restart < self.restart_every:
            return
        dead = torch.nonzero(self.usage_since_restart < self.restart_threshold).flatten()
        if len(dead):
            pick = torch.randint(flat.shape[0], (len(dead),), generator=generator).to(flat.device)
            self.codebook[dead] = flat[pick]
            self.ema_count[dead] = 1.0
            self.ema_sum[dead] = flat[pick]
            self.restarts += len(dead)
        self.usage_since_restart.zero_()
        self.calls_since_restart = 0
