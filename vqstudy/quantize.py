"""A straight-through vector quantizer with the knobs the collapse study turns.

Written here rather than imported: the libraries are slow on CPU and hide
the diagnostics. Nearest-code search uses the ``addmm`` expansion
||x||^2 - 2 x.c + ||c||^2 without the constant ||x||^2, in row chunks so the
distance matrix never exceeds ``chunk_size x K``, each chunk searched in blocks
that stay in the CPU's cache (the same bits as one product per chunk). Assignments that need no
gradient may ask for FAISS's exact flat L2 search instead (``backend="faiss"``
in :func:`nearest_code` and :func:`kmeans`): the same indices up to float ties,
several times faster at small D, because it fuses the argmin into the product.
Training always uses the torch path; so does every call under the pinned
numerics (``VQSTUDY_REPRODUCIBLE=1``), whose kernels FAISS does not honour.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import numerics
from .config import (DISTANCES, GRADIENTS, QUANTIZER_KINDS, REPARAMS, QuantizerConfig,
                     quantizer_option_problem)


BACKENDS = ("torch", "faiss")


def _check_chunk(chunk_size: int) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"invalid chunk_size={chunk_size!r}: must be a positive integer")


def _check_vectors(x: torch.Tensor, codebook: torch.Tensor) -> None:
    if x.ndim != 2 or codebook.ndim != 2:
        raise ValueError(f"expected 2-D vectors and codebook, got shapes {tuple(x.shape)} and {tuple(codebook.shape)}")
    if x.shape[1] != codebook.shape[1]:
        raise ValueError(f"dimension mismatch: vectors have {x.shape[1]}, codes have {codebook.shape[1]}")


def check_finite(name: str, values: torch.Tensor, why: str) -> None:
    """ValueError naming ``name`` (and its first bad rows) when ``values`` holds NaN or Inf.

    One sum first: a NaN or Inf anywhere makes it NaN or Inf, so a finite sum clears the tensor in one
    vectorized pass without an N x D mask; only a non-finite sum (or one overflowed by huge finite values)
    pays for the element-wise check."""
    if values.is_floating_point() and bool(torch.isfinite(values.sum())):
        return
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        rows = torch.nonzero(bad.reshape(values.shape[0], -1).any(1)).flatten()[:5].tolist() if values.ndim else []
        raise ValueError(f"invalid {name}: {int(bad.sum())} non-finite value(s) (NaN or Inf)"
                         + (f", first in row(s) {rows}" if rows else "") + f": {why}")


@torch.no_grad()
def nearest_code(x: torch.Tensor, codebook: torch.Tensor, chunk_size: int = 8192,
                 return_distance: bool = False, backend: str = "torch"):
    """Index of the nearest code (squared Euclidean) for each row of ``x``.

    Ties go to the lowest index. With ``return_distance`` also returns the
    squared distance to that code (clamped at 0). Both must be floating point
    and finite (a NaN row has no nearest code: ValueError naming the
    argument); when their dtypes differ both are converted to the wider one
    (``torch.promote_types``, e.g. float64 rows against a float32 codebook
    are compared in float64), and the distances come in that dtype.

    ``backend="faiss"`` searches with FAISS's exact ``IndexFlatL2`` (as many
    threads as torch) when it can: float32 CPU tensors, faiss installed, and
    the pinned numerics off; otherwise, and by default, the torch path. The
    indices are the torch path's up to float ties; the distances agree to
    float32 rounding.
    """
    _check_chunk(chunk_size)
    _check_vectors(x, codebook)
    if backend not in BACKENDS:
        raise ValueError(f"invalid backend={backend!r}: allowed values are {', '.join(map(repr, BACKENDS))}")
    for name, t in (("x", x), ("codebook", codebook)):
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
        check_finite(name, t, "a NaN or Inf row has no nearest code")
    if x.dtype != codebook.dtype:
        wide = torch.promote_types(x.dtype, codebook.dtype)
        x, codebook = x.to(wide), codebook.to(wide)
    if backend == "faiss" and faiss_usable(x, codebook):
        return _nearest_faiss(x, codebook, return_distance)
    return _nearest(x, codebook, chunk_size, return_distance)


def faiss_usable(x: torch.Tensor, codebook: torch.Tensor) -> bool:
    """Whether :func:`nearest_code` can hand this search to FAISS: float32 CPU tensors, faiss importable,
    pinned numerics off (FAISS picks its own SIMD kernels, so its rounding is not pinned)."""
    if x.dtype != torch.float32 or codebook.dtype != torch.float32 or x.device.type != "cpu" \
            or codebook.device.type != "cpu" or numerics.active():
        return False
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _nearest_faiss(x: torch.Tensor, codebook: torch.Tensor, return_distance: bool = False):
    """Exact search by ``faiss.IndexFlatL2`` (BLAS product with a fused argmin, blocked internally, so its
    memory stays bounded); callers have checked :func:`faiss_usable`."""
    import faiss

    faiss.omp_set_num_threads(torch.get_num_threads())
    index = faiss.IndexFlatL2(codebook.shape[1])
    index.add(codebook.detach().contiguous().numpy())
    dist, idx = index.search(x.detach().contiguous().numpy(), 1)
    idx = torch.from_numpy(idx[:, 0])
    if not return_distance:
        return idx
    return idx, torch.from_numpy(dist[:, 0]).clamp_min_(0.0)


# Each ``chunk_size`` chunk of rows is searched in blocks whose distances fit in a last-level cache (a fixed
# budget, not the machine's cache size, so every machine cuts the same blocks): the product is written and
# reduced while it is still cached, instead of streaming chunk x K floats through memory twice.
BLOCK_BYTES = 8 * 2**20
# A block is a multiple of this many rows, and the last block of a chunk takes a shorter tail along: BLAS
# computes a row's product identically whatever the block's row count, except for single-row (matrix-vector)
# calls and the last rows(mod 4) of a call, so keeping the chunk's tail inside one block of >= 32 rows gives
# the same bits as one call over the whole chunk (tested).
BLOCK_ROWS_MULTIPLE = 32
# The first-argmin by group minima: ``amin`` is vectorized where ``argmin`` is not (2-4x faster at K >= 256).
ARGMIN_GROUP = 32


def _block_rows(k: int, itemsize: int, chunk_size: int) -> int:
    """Rows per block: as many as keep a block's k distances within :data:`BLOCK_BYTES`, a multiple of
    :data:`BLOCK_ROWS_MULTIPLE`, at most ``chunk_size``."""
    rows = BLOCK_BYTES // (k * itemsize) // BLOCK_ROWS_MULTIPLE * BLOCK_ROWS_MULTIPLE
    return max(BLOCK_ROWS_MULTIPLE, min(rows, chunk_size))


def _blocks(n: int, chunk_size: int, block: int) -> list[tuple[int, int]]:
    """(start, stop) of every block: each chunk of ``chunk_size`` rows cut into ``block`` rows, a chunk's
    short tail (< :data:`BLOCK_ROWS_MULTIPLE` rows) joined to the block before it."""
    spans = []
    for chunk_start in range(0, n, chunk_size):
        chunk_stop = min(chunk_start + chunk_size, n)
        starts = list(range(chunk_start, chunk_stop, block))
        if len(starts) > 1 and chunk_stop - starts[-1] < BLOCK_ROWS_MULTIPLE:
            starts.pop()
        spans += [(a, b) for a, b in zip(starts, starts[1:] + [chunk_stop])]
    return spans


def search_blocks(x: torch.Tensor, k: int, chunk_size: int) -> list[tuple[int, int]]:
    """The (start, stop) row blocks in which a search of ``x`` against ``k`` codes computes its distances:
    cache-sized on the CPU, whole chunks on a GPU (where each launch costs more than a cache miss)."""
    block = _block_rows(k, x.element_size(), chunk_size) if x.device.type == "cpu" else chunk_size
    return _blocks(x.shape[0], chunk_size, block)


def first_argmin(d: torch.Tensor) -> torch.Tensor:
    """``d.argmin(1)`` (the lowest index among equal minima; a NaN counts as the minimum, as in argmin),
    computed from group minima where that is faster: the first group holding the row's minimum, then the
    first minimum inside it. Under the pinned numerics ``amin`` is not vectorized either, so plain argmin."""
    rows, k = d.shape
    if numerics.active() or k < 8 * ARGMIN_GROUP or not d.is_contiguous() or d.device.type != "cpu":
        return d.argmin(1)
    g = ARGMIN_GROUP
    groups = k // g
    grouped = d.as_strided((rows, groups, g), (k, g, 1))
    best_group = grouped.amin(2).argmin(1)
    idx = best_group * g + grouped[torch.arange(rows), best_group].argmin(1)
    if groups * g < k:   # the last k mod g columns: taken only when strictly smaller (or NaN) there
        tail = d[:, groups * g:]
        tail_min, tail_arg = tail.min(1)
        head_min = d.gather(1, idx[:, None])[:, 0]
        take = (tail_min < head_min) | (tail_min.isnan() & ~head_min.isnan())
        idx = torch.where(take, tail_arg + groups * g, idx)
    return idx


@torch.no_grad()
def _nearest(x: torch.Tensor, codebook: torch.Tensor, chunk_size: int, return_distance: bool = False):
    """:func:`nearest_code` without the value checks: the training loop's own calls, whose inputs are
    float32 by construction and whose non-finite values are reported as divergence, not raised."""
    _check_chunk(chunk_size)
    c_sq = codebook.pow(2).sum(1)
    idx = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    dist = torch.empty(x.shape[0], dtype=x.dtype, device=x.device) if return_distance else None
    ct = codebook.t()
    spans = search_blocks(x, codebook.shape[0], chunk_size)
    # One buffer for every block's distances: the same addmm into the same (64-byte aligned) storage gives
    # the same bits, without allocating and first-touching block x K floats per block.
    buf = torch.empty(max((b - a for a, b in spans), default=0), codebook.shape[0], dtype=x.dtype, device=x.device)
    for start, stop in spans:
        rows = x[start:stop]
        partial = torch.addmm(c_sq, rows, ct, alpha=-2.0, out=buf[:stop - start])  # ||c||^2 - 2 x.c
        arg = first_argmin(partial)
        idx[start:stop] = arg
        if return_distance:
            best = partial.gather(1, arg[:, None])[:, 0]
            dist[start:stop] = (best + rows.pow(2).sum(1)).clamp_min_(0.0)
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
           max_seed_points: int = 20000, backend: str = "torch") -> torch.Tensor:
    """Lloyd's k-means with k-means++ seeding; deterministic for a given seed.

    Seeding runs on at most ``max_seed_points`` rows (a random subset) to keep
    its k sequential passes cheap. An empty cluster is re-seeded with the point
    currently farthest from its center, so all k centers stay in use.
    ``backend="faiss"`` runs each Lloyd step's assignment by FAISS (see
    :func:`nearest_code`; the torch path where FAISS cannot serve): faster,
    the same seeding, and centers that may differ from the default's only
    where a float tie sends a point to another center.
    """
    if x.ndim != 2:
        raise ValueError(f"kmeans expects 2-D vectors, got shape {tuple(x.shape)}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"invalid k={k!r}: must be a positive integer")
    if x.shape[0] < k:
        raise ValueError(f"kmeans needs at least k={k} vectors, got {x.shape[0]}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
        raise ValueError(f"invalid iters={iters!r}: must be an integer >= 0")
    if backend not in BACKENDS:
        raise ValueError(f"invalid backend={backend!r}: allowed values are {', '.join(map(repr, BACKENDS))}")
    x = x.detach().float()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    seed_rows = x
    if x.shape[0] > max_seed_points:
        pick = torch.randperm(x.shape[0], generator=gen)[:max_seed_points].to(x.device)
        seed_rows = x[pick]
    centers = kmeans_plus_plus(seed_rows, k, gen, chunk_size)
    use_faiss = backend == "faiss" and faiss_usable(x, centers)
    for _ in range(iters):
        idx, dist = (_nearest_faiss(x, centers, return_distance=True) if use_faiss
                     else _nearest(x, centers, chunk_size, return_distance=True))
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


def rotate_to(src: torch.Tensor, tgt: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The rotation trick (Fifty et al. 2024, sec. 4.2): ``tgt`` in value, gradients to ``src`` through a rotation.

    Each row e of ``src`` is mapped onto its row q of ``tgt`` by the rotation R that
    takes e/||e|| to q/||q|| and the rescale ||q||/||e||, both treated as constants:
    R e = e - 2 (e.w) w + 2 (e.u) q_hat with u = e/||e||, q_hat = q/||q||, w = the
    unit vector of u + q_hat. The backward pass therefore turns the decoder's
    gradient by R^T instead of copying it (straight-through).
    """
    src_norm = src.norm(dim=-1, keepdim=True)
    tgt_norm = tgt.norm(dim=-1, keepdim=True)
    u = (src / src_norm.clamp_min(eps)).detach()
    q_hat = (tgt / tgt_norm.clamp_min(eps)).detach()
    w = F.normalize(u + q_hat, dim=-1, eps=eps)
    rotated = src - 2 * (src * w).sum(-1, keepdim=True) * w + 2 * (src * u).sum(-1, keepdim=True) * q_hat
    return rotated * (tgt_norm / src_norm.clamp_min(eps)).detach()


FSQ_BOUND_EPS = 1e-3  # FSQ's bound keeps tanh off the outermost rounding boundary by this fraction


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

    The other collapse remedies, all off by default (then the arithmetic is
    exactly the plain quantizer's): ``reparam='affine'`` codes = scale * raw +
    shift with per-dimension scale and shift shared by all codes (Huh et al.
    2023); ``reparam='linear'`` codes = C W with the raw codebook C frozen and
    W learned, so all codes move together (SimVQ); ``distance='cosine'``
    searches l2-normalized vectors and codes, and ``lookup_dim`` searches in a
    learned projection and maps the code back (ViT-VQGAN); ``gradient=
    'rotation'`` passes the decoder's gradient to the encoder by the rotation
    trick (:func:`rotate_to`); ``kind='fsq'`` replaces the codebook by
    rounding each of ``len(fsq_levels)`` bounded dimensions to its levels (an
    implicit codebook of prod(fsq_levels) codes, no loss). ``codebook`` holds
    the raw codes in the lookup space; :meth:`codes` gives what each index
    decodes to, for the diagnostics.
    """

    def __init__(self, codebook_size: int, dim: int, beta: float = 0.25, update: str = "loss",
                 ema_decay: float = 0.99, chunk_size: int = 8192, restart_threshold: float = 0.0,
                 restart_every: int = 100, eps: float = 1e-5, *, kind: str = "vq",
                 fsq_levels: tuple[int, ...] = (), reparam: str = "none", distance: str = "euclidean",
                 lookup_dim: int | None = None, gradient: str = "straight_through"):
        super().__init__()
        if update not in ("loss", "ema"):
            raise ValueError(f"invalid update={update!r}: allowed values are 'loss', 'ema'")
        for name, value, allowed in (("kind", kind, QUANTIZER_KINDS), ("reparam", reparam, REPARAMS),
                                     ("distance", distance, DISTANCES), ("gradient", gradient, GRADIENTS)):
            if value not in allowed:
                raise ValueError(f"invalid {name}={value!r}: allowed values are {', '.join(map(repr, allowed))}")
        fsq_levels = tuple(fsq_levels)
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 3 for n in fsq_levels):
            raise ValueError(f"invalid fsq_levels={fsq_levels!r}: must be integers >= 3")
        if lookup_dim is not None and (isinstance(lookup_dim, bool) or not isinstance(lookup_dim, int)
                                       or lookup_dim < 1):
            raise ValueError(f"invalid lookup_dim={lookup_dim!r}: must be None or a positive integer")
        problem = quantizer_option_problem(codebook_size, update, restart_threshold, kind, fsq_levels, reparam,
                                           distance, lookup_dim, gradient)
        if problem is not None:
            raise ValueError("invalid {}={!r}: {}".format(*problem))
        _check_chunk(chunk_size)
        self.codebook_size, self.dim = codebook_size, dim
        self.beta, self.update, self.ema_decay, self.eps = beta, update, ema_decay, eps
        self.chunk_size = chunk_size
        self.restart_threshold, self.restart_every = restart_threshold, restart_every
        self.kind, self.fsq_levels, self.reparam, self.distance = kind, fsq_levels, reparam, distance
        self.lookup_dim, self.gradient = lookup_dim, gradient
        self.code_dim = len(fsq_levels) if kind == "fsq" else (lookup_dim or dim)
        self.enabled = True
        self.restarts = 0  # total codes restarted
        # Projections to the lookup space only when asked for (or FSQ's dimension differs): the plain
        # quantizer gets no extra parameters and draws nothing from the random stream.
        projected = lookup_dim is not None or self.code_dim != dim
        self.project_in = nn.Linear(dim, self.code_dim) if projected else None
        self.project_out = nn.Linear(self.code_dim, dim) if projected else None
        if kind == "fsq":
            self.register_buffer("fsq_level_counts", torch.tensor(fsq_levels, dtype=torch.int32))
            self.register_buffer("fsq_basis", torch.cumprod(torch.tensor((1,) + fsq_levels[:-1]), 0,
                                                            dtype=torch.int32))
            return
        learn_raw = update == "loss" and reparam != "linear"
        self.codebook = nn.Parameter(torch.zeros(codebook_size, self.code_dim), requires_grad=learn_raw)
        if reparam == "affine":  # vqtorch's learned affine: scale = 1, shift = 0 at the start
            self.affine_scale = nn.Parameter(torch.ones(self.code_dim))
            self.affine_shift = nn.Parameter(torch.zeros(self.code_dim))
        elif reparam == "linear":  # identity at the start, so the remedy begins from the configured codebook
            self.linear_map = nn.Parameter(torch.eye(self.code_dim))
        self.register_buffer("ema_count", torch.ones(codebook_size))
        self.register_buffer("ema_sum", torch.zeros(codebook_size, self.code_dim))
        self.register_buffer("usage_since_restart", torch.zeros(codebook_size))
        self.calls_since_restart = 0

    @classmethod
    def from_config(cls, config: QuantizerConfig, dim: int) -> "VectorQuantizer":
        """The quantizer a config section describes, for encoder outputs of dimension ``dim``."""
        return cls(dim=dim, **config.module_kwargs())

    @torch.no_grad()
    def set_codebook(self, codes: torch.Tensor) -> None:
        """Replace the raw codebook (K, code_dim) and reset EMA / restart state and any
        reparameterization to the identity, so the codes in use are ``codes``."""
        if self.kind == "fsq":
            raise ValueError("kind='fsq' has no codebook to set: its codes are the grid of fsq_levels")
        if codes.shape != self.codebook.shape:
            raise ValueError(f"codebook shape {tuple(codes.shape)} != {tuple(self.codebook.shape)}")
        self.codebook.copy_(codes)
        if self.reparam == "affine":
            self.affine_scale.fill_(1.0)
            self.affine_shift.zero_()
        elif self.reparam == "linear":
            self.linear_map.copy_(torch.eye(self.code_dim))
        self.ema_count.fill_(1.0)
        self.ema_sum.copy_(codes)
        self.usage_since_restart.zero_()
        self.calls_since_restart = 0

    def lookup_codebook(self) -> torch.Tensor:
        """The codes the search compares against (K, code_dim): reparameterized, normalized for cosine."""
        book = self.codebook
        if self.reparam == "none" and self.distance == "euclidean":
            return book
        book = book.clone()  # restart writes the raw codes in place; autograd keeps this step's copy
        if self.reparam == "affine":
            book = book * self.affine_scale + self.affine_shift
        elif self.reparam == "linear":
            book = book @ self.linear_map
        return F.normalize(book, dim=-1) if self.distance == "cosine" else book

    def to_lookup(self, flat: torch.Tensor) -> torch.Tensor:
        """Encoder vectors (N, dim) in the lookup space (N, code_dim); the vectors themselves by default."""
        if self.project_in is not None:
            flat = self.project_in(flat)
        return F.normalize(flat, dim=-1) if self.distance == "cosine" else flat

    def _from_lookup(self, v: torch.Tensor) -> torch.Tensor:
        return self.project_out(v) if self.project_out is not None else v

    def codes(self) -> torch.Tensor:
        """What each index decodes to (K, dim), in the encoder's space; for FSQ the implicit grid."""
        return self._from_lookup(self._fsq_grid() if self.kind == "fsq" else self.lookup_codebook())

    @torch.no_grad()
    def assign(self, flat: torch.Tensor) -> torch.Tensor:
        if self.kind == "fsq":
            return self._fsq(self.to_lookup(flat))[1]
        return _nearest(self.to_lookup(flat.detach()), self.lookup_codebook().detach(), self.chunk_size)

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None) -> QuantizerOutput:
        if not self.enabled:
            return QuantizerOutput(z, None, z.new_zeros(()))
        if z.shape[-1] != self.dim:
            raise ValueError(f"expected last dimension {self.dim}, got {tuple(z.shape)}")
        flat = z.reshape(-1, self.dim)
        v = self.to_lookup(flat)  # flat itself for the plain quantizer
        if self.kind == "fsq":  # no codebook, no auxiliary loss (Mentzer et al. 2024)
            codes, idx = self._fsq(v)
            return QuantizerOutput(self._from_lookup(codes).reshape(z.shape), idx.reshape(z.shape[:-1]),
                                   z.new_zeros(()))
        book = self.lookup_codebook()
        idx = _nearest(v.detach(), book.detach(), self.chunk_size)  # unchecked: a NaN encoder ends as "diverged"
        # Quantize with the codebook that chose the indices, then update it (the standard VQ-VAE EMA order):
        # the decoder input and the commitment loss never see this step's EMA move.
        q = F.embedding(idx, book)  # a copy of the rows; embedding's backward is deterministic
        if self.training and self.update == "ema":
            self._ema_update(v.detach(), idx)
        commitment = F.mse_loss(v, q.detach())
        loss = self.beta * commitment
        if self.update == "loss":
            loss = loss + F.mse_loss(q, v.detach())
        if self.training and self.restart_threshold > 0:
            self._maybe_restart(v.detach(), idx, generator)
        if self.gradient == "rotation" and self.training and torch.is_grad_enabled():
            quantized = rotate_to(v, q.detach())
        else:
            quantized = v + (q - v).detach()  # straight-through estimator
        quantized = self._from_lookup(quantized)
        return QuantizerOutput(quantized.reshape(z.shape), idx.reshape(z.shape[:-1]), loss)

    def _fsq(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """FSQ codes (bound each dimension, round to its levels, straight-through) and their indices.

        As in Mentzer et al. 2024 (appendix A.1) and vector-quantize-pytorch's ``FSQ``: even level
        counts are offset by a half step so that every level is reachable.
        """
        levels = self.fsq_level_counts
        half_l = (levels - 1) * (1 + FSQ_BOUND_EPS) / 2
        offset = torch.where(levels % 2 == 0, 0.5, 0.0)
        bounded = torch.tanh(v + torch.atanh(offset / half_l)) * half_l - offset
        half_width = levels // 2
        codes = (bounded + (bounded.round() - bounded).detach()) / half_width
        idx = ((codes.detach() * half_width + half_width) * self.fsq_basis).sum(-1).round().long()
        return codes, idx

    def _fsq_grid(self) -> torch.Tensor:
        """The implicit FSQ codebook (prod(levels), len(levels)): code k's value in each dimension."""
        k = torch.arange(self.codebook_size, device=self.fsq_basis.device)
        digits = (k[:, None] // self.fsq_basis) % self.fsq_level_counts
        half_width = self.fsq_level_counts // 2
        return (digits - half_width) / half_width

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
            raw = flat[pick]
            if self.reparam == "affine":  # the raw code whose affine image is the picked vector
                raw = (raw - self.affine_shift) / self.affine_scale
            self.codebook[dead] = raw
            self.ema_count[dead] = 1.0
            self.ema_sum[dead] = raw
            self.restarts += len(dead)
        self.usage_since_restart.zero_()
        self.calls_since_restart = 0
