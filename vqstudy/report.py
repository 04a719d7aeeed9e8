"""``vqstudy diagnose``: a collapse report for a tokenizer saved to disk, streamed in bounded memory.

Reads a codebook (a ``.pt``/``.pth`` state dict of vqstudy's ``VectorQuantizer``
or of vector-quantize-pytorch's ``VectorQuantize``/``ResidualVQ``, a ``.npy``
array, a ``.safetensors`` file) and optionally embeddings (``.npy``,
memory-mapped, any number of rows), indices and labels. The embeddings pass
through memory once, in chunks: usage counts, perplexity, utilization,
quantization error, nearest distances and the covariance (float64, shifted by
the first chunk's mean) are exact over the whole set; only the embeddings'
own mean pairwise distance and the points drawn in the figures come from a
fixed seeded subsample, and the report says so. Missing indices are the
nearest codes (squared Euclidean, ties to the lowest index, as
:func:`vqstudy.quantize.nearest_code`).

Every problem with the input stops before anything is written, with one line
naming the file and the problem (:class:`InputError`; the CLI exits with 2).
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import mmap
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from . import health
from .diagnostics import (SPREAD_SAMPLE, codebook_spread, covariance_eigenvalues, effective_dimension,
                          mean_pairwise_distance, mode_entropy_from_counts, participation_ratio, perplexity,
                          scale_free_metrics, spread_sample_rows, usage_entropy, water_filling_dimension)

CODEBOOK_SUFFIXES = (".pt", ".pth", ".npy", ".safetensors")
CODEBOOK_NAMES = ("codebook", "embed", "embeddings")  # last part of a state-dict key that holds codes
CODEBOOK_PARENTS = ("embedding", "codebook", "embed", "embeddings")  # ...or "<parent>.weight"
DISTANCE_ELEMENTS = 2 ** 25  # one chunk's distance matrix (128 MB in float32) bounds the memory
PLOT_SAMPLE = 2000           # embeddings drawn in the principal-plane figure


class InputError(ValueError):
    """A problem with one input file: the message starts with the file's name."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")


# --- codebooks ----------------------------------------------------------------------------------

@dataclass
class Section:
    """One codebook to diagnose and how it sees the embeddings."""
    name: str
    codes: np.ndarray                  # (K, d) float64
    head: int | None = None            # this head's slice of the (projected) embedding
    heads: int = 1                     # number of heads sharing the embedding's last dimension
    shared_heads: bool = False         # one codebook for every head: each row is `heads` vectors
    level: int | None = None           # residual level: sees the residual after the levels before it
    projection: tuple[np.ndarray, np.ndarray | None] | None = None  # project_in (W, b) of the library


def _load_state(path: Path) -> Mapping[str, Any]:
    if path.suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise InputError(path, "reading .safetensors needs the safetensors package (pip install safetensors)")
        try:
            return load_file(str(path))
        except Exception as exc:  # the library raises its own error types for corrupt headers
            raise InputError(path, f"not a readable safetensors file ({exc})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(path, f"not a readable PyTorch file ({type(exc).__name__}: {str(exc).splitlines()[0]})") \
            from None
    for wrapper in ("state_dict", "model", "module"):  # checkpoints that wrap the state dict
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if isinstance(state, torch.Tensor):
        return {"": state}
    if not isinstance(state, Mapping):
        raise InputError(path, f"expected a state dict (a mapping of names to tensors), got {type(state).__name__}")
    return state


def _as_array(value: Any) -> np.ndarray | None:
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            return None
        return value.detach().to(torch.float64).cpu().numpy()
    if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
        return value.astype(np.float64)
    return None


def codebook_candidates(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """State-dict entries that look like codebooks: floating (K, D) or (heads, K, D) named like one."""
    found = {}
    for key, value in state.items():
        parts = str(key).split(".")
        named = parts[-1] in CODEBOOK_NAMES or (parts[-1] == "weight" and len(parts) > 1
                                                 and parts[-2].lstrip("_") in CODEBOOK_PARENTS)
        arr = _as_array(value)
        if (named or key == "") and arr is not None and arr.ndim in (2, 3):
            found[str(key)] = arr
    return found


_LEVEL = re.compile(r"^(?P<prefix>.*?)layers\.(?P<level>\d+)\.(?P<rest>.+)$")


def _projection(state: Mapping[str, Any], prefix: str) -> tuple[np.ndarray, np.ndarray | None] | None:
    weight = _as_array(state.get(f"{prefix}project_in.weight"))
    if weight is None or weight.ndim != 2:
        return None
    return weight, _as_array(state.get(f"{prefix}project_in.bias"))


def _sections_for(path: Path, state: Mapping[str, Any], keys: list[str],
                  candidates: Mapping[str, np.ndarray]) -> list[Section]:
    """One section per codebook: a residual stack gives one per level, a multi-head codebook one per head."""
    if len(keys) > 1:
        levels = [_LEVEL.match(k) for k in keys]
        if not all(levels) or len({(m["prefix"], m["rest"]) for m in levels}) != 1:
            raise InputError(path, f"{len(keys)} candidate codebooks ({', '.join(keys)}): choose one with --key")
        order = sorted(range(len(keys)), key=lambda i: int(levels[i]["level"]))
        prefix = levels[0]["prefix"]
        out = []
        for n, i in enumerate(order):
            arr = candidates[keys[i]]
            if arr.ndim == 3 and arr.shape[0] != 1:
                raise InputError(path, f"{keys[i]}: residual levels with several heads are not supported")
            out.append(Section(keys[i], arr.reshape(arr.shape[-2:]), level=n))
        if len({s.codes.shape[1] for s in out}) != 1:
            raise InputError(path, "the residual levels' codes differ in dimension")
        out[0].projection = _projection(state, prefix)
        for s in out[1:]:
            s.projection = out[0].projection
        return out
    key = keys[0]
    arr = candidates[key]
    prefix = key.rsplit("_codebook.", 1)[0] if "_codebook." in key else ""
    projection = _projection(state, prefix) if prefix or key.startswith("_codebook.") else None
    label = key or path.name
    if arr.ndim == 2 or arr.shape[0] == 1:
        return [Section(label, arr.reshape(arr.shape[-2:]), projection=projection)]
    heads = arr.shape[0]
    return [Section(f"{label}[head {h}]", arr[h], head=h, heads=heads, projection=projection) for h in range(heads)]


def load_codebooks(path: str | Path, key: str | None = None) -> list[Section]:
    """The codebook sections in ``path`` (``--key``: an exact key, or a prefix that selects one codebook or stack)."""
    path = Path(path)
    _check_file(path)
    if path.suffix not in CODEBOOK_SUFFIXES:
        raise InputError(path, f"unsupported codebook format {path.suffix!r}: allowed are "
                         + ", ".join(CODEBOOK_SUFFIXES))
    if path.suffix == ".npy":
        arr = _as_array(_load_npy(path, "codebook", mmap=False))
        if arr is None or arr.ndim not in (2, 3):
            raise InputError(path, "expected a floating-point (K, D) or (heads, K, D) codebook array")
        state: Mapping[str, Any] = {"": arr}
        candidates = {"": arr}
    else:
        state = _load_state(path)
        candidates = codebook_candidates(state)
    if key is not None:
        if key in state:
            arr = _as_array(state[key])
            if arr is None or arr.ndim not in (2, 3):
                raise InputError(path, f"--key {key!r} is not a floating-point (K, D) or (heads, K, D) tensor")
            candidates = {key: arr}
        else:
            candidates = {k: v for k, v in candidates.items() if k.startswith(key)}
            if not candidates:
                raise InputError(path, f"no codebook under --key {key!r}")
    if not candidates:
        names = ", ".join(list(map(str, state))[:8]) or "nothing"
        raise InputError(path, f"no codebook found (keys: {names}); name one with --key")
    sections = _sections_for(path, state, sorted(candidates), candidates)
    for s in sections:
        if s.codes.shape[0] < 1 or s.codes.shape[1] < 1:
            raise InputError(path, f"{s.name}: empty codebook of shape {s.codes.shape}")
        if not np.isfinite(s.codes).all():
            raise InputError(path, f"{s.name}: the codebook holds NaN or Inf")
    return sections


# --- arrays on disk -----------------------------------------------------------------------------

def _check_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(path, "no such file")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file")


def _load_npy(path: Path, what: str, mmap: bool = True) -> np.ndarray:
    _check_file(path)
    if path.suffix != ".npy":
        raise InputError(path, f"{what} must be a .npy file, got {path.suffix!r}")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as exc:
        raise InputError(path, f"not a readable .npy file ({str(exc).splitlines()[0]})") from None


def _release(arr: np.ndarray, upto_row: int) -> None:
    """Drop the pages of a memory-mapped array below ``upto_row`` from this process (they stay in the page cache)."""
    base = getattr(arr, "_mmap", None)
    if not isinstance(base, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        return
    start = arr.offset % mmap.ALLOCATIONGRANULARITY
    end = start + upto_row * arr.strides[0]
    end -= end % mmap.PAGESIZE
    if end > 0:
        base.madvise(mmap.MADV_DONTNEED, 0, end)


def _load_libc():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _load_libc()


def _trim_heap() -> None:
    """Hand the heap's freed pages back to the system after a chunk.

    Without it glibc keeps the chunks' temporaries (a few MB each, below its
    dynamic mmap threshold) and the resident memory grew by about 3.7 KB per
    row streamed (measured at D = 256); with it the memory stays flat. A no-op
    where the C library has no ``malloc_trim``.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


# --- the streaming pass -------------------------------------------------------------------------

@dataclass
class _Stats:
    """Everything one section accumulates over the chunks (float64 sums, exact counts)."""
    k: int
    d: int
    n: int = 0
    counts: np.ndarray = None  # type: ignore[assignment]
    shift: np.ndarray | None = None
    s1: np.ndarray = None  # type: ignore[assignment]
    s2: np.ndarray = None  # type: ignore[assignment]
    qerr: float = 0.0
    to_code: float = 0.0
    col_min: np.ndarray = None  # type: ignore[assignment]
    joint: np.ndarray | None = None
    class_n: np.ndarray | None = None
    class_s1: np.ndarray | None = None
    sq_total: float = 0.0
    sample: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.counts = np.zeros(self.k, dtype=np.int64)
        self.s1 = np.zeros(self.d)
        self.s2 = np.zeros((self.d, self.d))
        self.col_min = np.full(self.k, np.inf)


def _nearest(v: torch.Tensor, codes: torch.Tensor, codes_sq: torch.Tensor,
             given: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(index, squared distance to it, each code's squared distance to its nearest row) in one matmul.

    The index is :func:`vqstudy.quantize.nearest_code`'s: the argmin of the same
    ``addmm`` expression, before the row's own squared norm is added.
    """
    v_sq = v.pow(2).sum(1)
    partial = torch.addmm(codes_sq, v, codes.t(), alpha=-2.0)  # ||c||^2 - 2 x.c
    if given is None:
        best, idx = partial.min(1)
    else:
        idx, best = given, partial.gather(1, given[:, None])[:, 0]
    col = partial.add_(v_sq[:, None]).amin(0).clamp_min_(0)
    return idx, (best + v_sq).clamp_min_(0), col


def _stream(sections: list[Section], emb: np.ndarray | None, emb_path: Path | None, idx: np.ndarray | None,
            labels: np.ndarray | None, n_rows: int, chunk_rows: int, sample_rows: np.ndarray,
            progress: bool) -> list[_Stats]:
    stats = [_Stats(s.codes.shape[0], s.codes.shape[1]) for s in sections]
    codes = [torch.from_numpy(s.codes.astype(np.float32)) for s in sections]
    codes_sq = [c.pow(2).sum(1) for c in codes]
    n_classes = int(labels.max()) + 1 if labels is not None and labels.size else 0
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n_rows, unit="vec", unit_scale=True, file=sys.stderr, desc="diagnose")
    try:
        for start in range(0, n_rows, chunk_rows):
            stop = min(start + chunk_rows, n_rows)
            lab = None if labels is None else np.asarray(labels[start:stop]).astype(np.int64)
            raw = None
            if emb is not None:
                raw = np.array(emb[start:stop], dtype=np.float64)
                if not np.isfinite(raw).all():
                    bad = start + int(np.flatnonzero(~np.isfinite(raw).all(1))[0])
                    raise InputError(emb_path, f"row {bad} holds NaN or Inf")
                _release(emb, stop)
            residual = None
            for i, (sec, st) in enumerate(zip(sections, stats)):
                given = None if idx is None else np.asarray(idx[start:stop]).astype(np.int64)
                if given is not None and given.ndim == 2:
                    given = given[:, i] if not sec.shared_heads else given.reshape(-1)
                if raw is None:
                    st.counts += np.bincount(given, minlength=st.k)
                    st.n += given.size
                    continue
                x = raw if sec.projection is None else raw @ sec.projection[0].T + (
                    0 if sec.projection[1] is None else sec.projection[1])
                if sec.level is not None:
                    v = x if sec.level == 0 else residual
                elif sec.shared_heads:
                    v = x.reshape(-1, st.d)
                elif sec.head is not None:
                    v = x[:, sec.head * st.d:(sec.head + 1) * st.d]
                else:
                    v = x
                v32 = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
                g = None if given is None else torch.from_numpy(given)
                ids, sq, col = _nearest(v32, codes[i], codes_sq[i], g)
                ids_np = ids.numpy()
                exact = v - sec.codes[ids_np]
                if sec.level is not None:
                    residual = exact
                st.counts += np.bincount(ids_np, minlength=st.k)
                st.qerr += float(np.einsum("ij,ij->", exact, exact))
                st.to_code += float(np.sqrt(sq.double().numpy()).sum())
                st.col_min = np.minimum(st.col_min, col.double().numpy())
                if st.shift is None:
                    st.shift = v.mean(0)
                centered = v - st.shift
                st.s1 += centered.sum(0)
                st.s2 += centered.T @ centered
                st.sq_total += float(np.einsum("ij,ij->", centered, centered))
                st.n += v.shape[0]
                lo, hi = np.searchsorted(sample_rows, [start, stop])
                if hi > lo:
                    rows = sample_rows[lo:hi] - start
                    st.sample.append(v.reshape(stop - start, -1, st.d)[rows].reshape(-1, st.d))
                if lab is not None:
                    lv = np.repeat(lab, v.shape[0] // lab.size)
                    if st.joint is None:
                        st.joint = np.zeros((st.k, n_classes), dtype=np.int64)
                        st.class_n = np.zeros(n_classes)
                        st.class_s1 = np.zeros((n_classes, st.d))
                    st.joint += np.bincount(ids_np * n_classes + lv, minlength=st.k * n_classes).reshape(
                        st.k, n_classes)
                    st.class_n += np.bincount(lv, minlength=n_classes)
                    np.add.at(st.class_s1, lv, centered)
            _trim_heap()
            if bar is not None:
                bar.update(stop - start)
    finally:
        if bar is not None:
            bar.close()
    return stats


def _metrics(sec: Section, st: _Stats, with_embeddings: bool) -> dict[str, Any]:
    counts = torch.from_numpy(st.counts.astype(np.float64))
    used = int((st.counts > 0).sum())
    c_eig = covariance_eigenvalues(torch.from_numpy(sec.codes))
    out: dict[str, Any] = {"codebook_size": st.k, "embedding_dim": st.d, "codebook_effective_dim":
                           effective_dimension(c_eig), "codebook_participation_ratio": participation_ratio(c_eig),
                           "codebook_spectrum": (c_eig / c_eig.sum()).tolist() if c_eig.sum() > 0 else c_eig.tolist()}
    out["codebook_cosine_spread"], out["codebook_euclidean_spread"] = codebook_spread(sec.codes)
    if st.n == 0:
        return out
    out.update({"n_vectors": st.n, "used_codes": used, "dead_codes": st.k - used, "utilization": used / st.k,
                "perplexity": perplexity(counts), "usage_entropy": usage_entropy(counts),
                "usage_entropy_max": math.log(st.k)})
    if not with_embeddings:
        return out
    n = st.n
    mean = st.shift + st.s1 / n
    cov = (st.s2 - np.outer(st.s1, st.s1) / n) / max(n - 1, 1)
    z_eig = np.clip(np.linalg.eigvalsh(cov)[::-1], 0.0, None)
    sample = np.concatenate(st.sample) if st.sample else np.zeros((0, st.d))
    embed_spread, rows = mean_pairwise_distance(sample)
    out.update({
        "quantization_error": st.qerr / n,
        "embed_total_variance": float(z_eig.sum()),
        "embed_effective_dim": effective_dimension(z_eig),
        "embed_participation_ratio": participation_ratio(z_eig),
        "water_filling_dim": water_filling_dimension(z_eig, st.k),
        "embed_spectrum": (z_eig / z_eig.sum()).tolist() if z_eig.sum() > 0 else z_eig.tolist(),
        "embed_euclidean_spread": embed_spread, "embed_spread_sample": rows,
        "embedding_to_code_distance": st.to_code / n,
        "code_to_embedding_distance": float(np.sqrt(st.col_min).mean()),
    })
    out.update(scale_free_metrics(sec.codes, counts, mean, embed_spread, out["codebook_euclidean_spread"]))
    if st.joint is not None:
        out.update(mode_entropy_from_counts(torch.from_numpy(st.joint)))
        centroids = st.class_s1 / np.maximum(st.class_n, 1)[:, None]   # relative to the shift
        grand = st.s1 / n
        between = float((st.class_n * ((centroids - grand) ** 2).sum(1)).sum())
        within = st.sq_total - float((st.class_n * (centroids ** 2).sum(1)).sum())
        out["cluster_separation"] = between / within if within > 0 else float("inf")
    out["_plot"] = {"mean": mean, "cov": cov, "sample": sample[:PLOT_SAMPLE]}
    return out


# --- the one entry point ------------------------------------------------------------------------

def _check_outputs(json_path: str | Path | None, report_dir: str | Path | None) -> None:
    if json_path is not None and Path(json_path).is_dir():
        raise InputError(json_path, "--json must name a file, not a folder")
    if report_dir is not None and Path(report_dir).exists() and not Path(report_dir).is_dir():
        raise InputError(report_dir, "--report must name a folder, and this is a file")


def diagnose_files(codebook: str | Path, embeddings: str | Path | None = None, indices: str | Path | None = None,
                   labels: str | Path | None = None, key: str | None = None, chunk_rows: int | None = None,
                   sample: int = SPREAD_SAMPLE, progress: bool | None = None) -> dict[str, Any]:
    """Diagnose a tokenizer saved to disk; returns ``{"inputs": ..., "sections": [...], "notes": [...]}``.

    Each section (one per codebook, residual level or head) holds the metrics
    of :func:`vqstudy.diagnostics.diagnose` that a single streaming pass can
    compute exactly, the scale-free ones, and a healthy / watch / collapsed
    verdict per collapse (:mod:`vqstudy.health`).
    """
    if chunk_rows is not None and (isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1):
        raise ValueError(f"invalid chunk_rows={chunk_rows!r}: must be a positive integer")
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 2:
        raise ValueError(f"invalid sample={sample!r}: must be an integer >= 2")
    cb_path = Path(codebook)
    sections = load_codebooks(cb_path, key)
    emb = idx = lab = None
    emb_path = Path(embeddings) if embeddings is not None else None
    n_rows = 0
    if emb_path is not None:
        emb = _load_npy(emb_path, "embeddings")
        if not np.issubdtype(emb.dtype, np.floating):
            raise InputError(emb_path, f"expected floating-point embeddings, got dtype {emb.dtype}")
        if emb.ndim < 2 or emb.size == 0:
            raise InputError(emb_path, f"expected embeddings of shape (N, D) with N, D >= 1, got {emb.shape}")
        emb = emb.reshape(-1, emb.shape[-1])
        n_rows, dim = emb.shape
        for s in sections:
            if s.projection is not None and not (dim == s.projection[0].shape[1] != s.projection[0].shape[0]):
                s.projection = None  # the embeddings are already in the codebook's space (or do not fit at all)
            width = dim if s.projection is None else s.projection[0].shape[0]
            d = s.codes.shape[1]
            if s.head is not None and width != s.heads * d:
                raise InputError(emb_path, f"embedding dimension {width} != {s.heads} heads x code dimension {d} "
                                 f"of {cb_path.name}")
            if s.head is None and width != d:
                if width % d == 0 and s.level is None and len(sections) == 1:
                    s.shared_heads, s.heads = True, width // d
                else:
                    raise InputError(emb_path, f"embedding dimension {width} != code dimension {d} of "
                                     f"{cb_path.name} [{s.name}]")
    if indices is not None:
        ipath = Path(indices)
        idx = _load_npy(ipath, "indices")
        if not np.issubdtype(idx.dtype, np.integer):
            raise InputError(ipath, f"expected integer indices, got dtype {idx.dtype}")
        if idx.size == 0:
            raise InputError(ipath, "no indices (the array is empty)")
        per_row = len(sections) if len(sections) > 1 else (sections[0].heads if sections[0].shared_heads else 1)
        rows = idx.shape[0] if emb is None else n_rows
        want = (rows,) if per_row == 1 else (rows, per_row)
        if idx.shape != want and not (per_row == 1 and idx.ndim == 2 and idx.shape == (rows, 1)):
            raise InputError(ipath, f"expected indices of shape {want} (one per embedding"
                             + ("" if per_row == 1 else " and codebook") + f"), got {idx.shape}")
        idx = idx.reshape(want)
        lo, hi = int(idx.min()), int(idx.max())
        k_max = min(s.codes.shape[0] for s in sections)
        if lo < 0 or hi >= k_max:
            raise InputError(ipath, f"indices out of range: found [{lo}, {hi}], the codebook has K = {k_max}")
        n_rows = rows
    if labels is not None:
        lpath = Path(labels)
        if emb is None:
            raise InputError(lpath, "labels need --embeddings")
        lab = _load_npy(lpath, "labels").reshape(-1)
        if not np.issubdtype(lab.dtype, np.integer):
            raise InputError(lpath, f"expected integer labels, got dtype {lab.dtype}")
        if lab.shape[0] != n_rows:
            raise InputError(lpath, f"expected {n_rows} labels (one per embedding), got {lab.shape[0]}")
        if int(lab.min()) < 0:
            raise InputError(lpath, "labels must be non-negative integers")
    k_total = sum(s.codes.shape[0] for s in sections)
    rows_per_chunk = chunk_rows or int(min(65536, max(256, DISTANCE_ELEMENTS // k_total)))
    sample_rows = spread_sample_rows(n_rows, sample) if emb is not None else np.zeros(0, dtype=np.int64)
    if progress is None:
        progress = sys.stderr.isatty()
    stats = _stream(sections, emb, emb_path, idx, lab, n_rows, rows_per_chunk, sample_rows, progress)

    notes = [f"Usage, perplexity, utilization, quantization error, distances and the covariance are exact over "
             f"all {n_rows:,} rows (float64 sums over chunks of {rows_per_chunk:,} rows)."]
    if emb is not None and n_rows > sample:
        notes.append(f"The embeddings' mean pairwise distance (behind the relative spread) uses a seeded sample "
                     f"of {sample:,} of {n_rows:,} rows; the figures draw at most {PLOT_SAMPLE:,} of them.")
    if emb is None:
        notes.append("No embeddings: only code usage (from the indices) and the codebook's own geometry.")
    out_sections = []
    for sec, st in zip(sections, stats):
        m = _metrics(sec, st, emb is not None)
        inputs = health.verdict_inputs(m, st.k, st.d)
        out_sections.append({"name": sec.name, "metrics": m, "verdict_inputs": inputs,
                             "verdicts": health.verdicts(inputs), "_counts": st.counts if st.n else None,
                             "_codes": sec.codes})
    return {"inputs": {"codebook": str(cb_path), "key": key, "embeddings": None if emb_path is None else str(emb_path),
                       "indices": None if indices is None else str(indices),
                       "labels": None if labels is None else str(labels), "rows": n_rows,
                       "indices_computed": idx is None and emb is not None},
            "sections": out_sections, "notes": notes,
            "thresholds": {t.metric: {"collapsed_below": t.collapsed_below, "healthy_from": t.healthy_from}
                           for t in health.TOKENS + health.EMBEDDINGS}}


# --- text, JSON, HTML ---------------------------------------------------------------------------

def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"


def _rows(m: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(metric, value) rows of the short table, only those this section has."""
    def has(*keys: str) -> bool:
        return all(k in m for k in keys)

    rows = []
    if has("utilization"):
        rows.append(("codes used", f"{_fmt(m['used_codes'])} of {_fmt(m['codebook_size'])} "
                     f"(utilization {m['utilization']:.3f}, {_fmt(m['dead_codes'])} dead)"))
        rows.append(("perplexity", f"{_fmt(m['perplexity'])} (perplexity / K {m['perplexity'] / m['codebook_size']:.3f})"))
        rows.append(("usage entropy", f"{_fmt(m['usage_entropy'])} nats of log K = {_fmt(m['usage_entropy_max'])}"))
    if has("codebook_centered_cosine_spread"):
        rows.append(("centered cosine spread", f"{_fmt(m['codebook_centered_cosine_spread'])} "
                     f"(used codes {_fmt(m['used_codebook_centered_cosine_spread'])})"))
        rows.append(("relative spread", f"{_fmt(m['codebook_relative_spread'])} "
                     f"(used codes {_fmt(m['used_codebook_relative_spread'])})"))
    else:
        rows.append(("cosine spread (uncentered)", _fmt(m["codebook_cosine_spread"])))
        rows.append(("Euclidean spread", _fmt(m["codebook_euclidean_spread"])))
    if has("embed_effective_dim"):
        rows.append(("effective dim (99%)", f"embeddings {m['embed_effective_dim']} of {m['embedding_dim']}, "
                     f"codes {m['codebook_effective_dim']} (used {m['used_codebook_effective_dim']})"))
        rows.append(("participation ratio", f"embeddings {_fmt(m['embed_participation_ratio'])}, codes "
                     f"{_fmt(m['codebook_participation_ratio'])} (used {_fmt(m['used_codebook_participation_ratio'])})"))
        rows.append(("water-filling dim", f"{m['water_filling_dim']} (for log2 K = {math.log2(m['codebook_size']):.3g} bits)"))
        rows.append(("quantization error", _fmt(m["quantization_error"])))
    else:
        rows.append(("codebook effective dim", f"{m['codebook_effective_dim']} of {m['embedding_dim']}"))
    if has("mode_entropy"):
        rows.append(("mode entropy H", f"{_fmt(m['mode_entropy'])} of log {m['n_clusters']} = "
                     f"{_fmt(m['mode_entropy_max'])}; clusters covered {m['clusters_covered']} of {m['n_clusters']}"))
        rows.append(("cluster separation", _fmt(m["cluster_separation"])))
    return rows


def _verdict_lines(section: Mapping[str, Any]) -> list[str]:
    inputs, verdicts = section["verdict_inputs"], section["verdicts"]
    lines = []
    for name, group in (("tokens", health.TOKENS), ("embeddings", health.EMBEDDINGS)):
        parts = [f"{t.metric} {inputs[t.metric]:.3f} (collapsed < {t.collapsed_below:g}, healthy >= {t.healthy_from:g})"
                 for t in group if inputs.get(t.metric) is not None]
        lines.append(f"{name} collapse: {verdicts[name]}" + (f"  [{'; '.join(parts)}]" if parts else
                                                             "  [needs embeddings or indices]"))
    return lines


def format_text(result: Mapping[str, Any]) -> str:
    """The short table and verdicts that ``vqstudy diagnose`` prints (3 significant digits: machine-independent)."""
    inp = result["inputs"]
    head = [f"codebook   {Path(inp['codebook']).name}" + (f" (--key {inp['key']})" if inp["key"] else "")]
    if inp["embeddings"]:
        head.append(f"embeddings {Path(inp['embeddings']).name}: {inp['rows']:,} vectors, indices "
                    + ("computed (nearest code)" if inp["indices_computed"] else f"from {Path(inp['indices']).name}"))
    elif inp["indices"]:
        head.append(f"indices    {Path(inp['indices']).name}: {inp['rows']:,}")
    if inp["labels"]:
        head.append(f"labels     {Path(inp['labels']).name}")
    lines = head
    for s in result["sections"]:
        m = s["metrics"]
        lines.append("")
        lines.append(f"== {s['name']}: K = {m['codebook_size']:,}, D = {m['embedding_dim']}")
        rows = _rows(m)
        width = max(len(r[0]) for r in rows)
        lines += [f"  {name:<{width}}  {value}" for name, value in rows]
        lines += ["  " + v for v in _verdict_lines(s)]
    lines.append("")
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)


def to_json(result: Mapping[str, Any]) -> str:
    """The result as JSON (the figures' raw material, keys starting with "_", left out)."""
    def public(d: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if not k.startswith("_")}

    clean = {**result, "sections": [{**public(s), "metrics": public(s["metrics"])} for s in result["sections"]]}
    return json.dumps(clean, indent=2, sort_keys=True, default=float, allow_nan=True)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figures(section: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(caption, base64 PNG) of each figure of one section."""
    from matplotlib.figure import Figure

    m, codes = section["metrics"], section["_codes"]
    figs = []
    if section.get("_counts") is not None:
        fig = Figure(figsize=(6, 3.2))
        ax = fig.add_subplot()
        counts = np.maximum(np.sort(section["_counts"])[::-1], 0.5)
        ax.fill_between(np.arange(1, counts.size + 1), counts, 0.5, step="mid", color="#4C72B0")
        ax.set_yscale("log")
        ax.axhline(counts.sum() / counts.size, ls="--", c="grey", lw=1, label="uniform usage")
        ax.set(xlabel="code rank (most used first)", ylabel="vectors assigned", title="Code usage")
        ax.legend(fontsize="small")
        figs.append(("Code usage, codes sorted by how many vectors they receive (dead codes drawn at 0.5).",
                     _png(fig)))
    fig = Figure(figsize=(6, 3.2))
    ax = fig.add_subplot()
    for key, label in (("embed_spectrum", "embeddings"), ("codebook_spectrum", "all codes")):
        if key in m and any(v > 0 for v in m[key]):
            spec = np.asarray(m[key])
            ax.semilogy(np.arange(1, spec.size + 1), np.maximum(spec, 1e-12), marker="o", ms=3, label=label)
    ax.set(xlabel="principal component", ylabel="share of variance", title="Spectra")
    ax.legend(fontsize="small")
    figs.append(("Covariance spectra (each normalized to sum 1): a steep drop is a collapsed dimension.", _png(fig)))
    plot = m.get("_plot")
    if plot is not None and section.get("_counts") is not None:
        eigval, eigvec = np.linalg.eigh(plot["cov"])
        axes = eigvec[:, ::-1][:, :2]
        if axes.shape[1] == 1:
            axes = np.hstack([axes, np.zeros_like(axes)])
        fig = Figure(figsize=(5, 5))
        ax = fig.add_subplot()
        pts = (plot["sample"] - plot["mean"]) @ axes
        ax.scatter(pts[:, 0], pts[:, 1], s=4, c="#BBBBBB", label=f"embeddings ({len(pts):,} drawn)")
        used = section["_counts"] > 0
        cpts = (codes - plot["mean"]) @ axes
        ax.scatter(cpts[used, 0], cpts[used, 1], s=14, c="#4C72B0", label="used codes")
        if (~used).any():
            ax.scatter(cpts[~used, 0], cpts[~used, 1], s=18, marker="x", c="#C44E52", label="dead codes")
        ax.set(xlabel="PC 1 of the embeddings", ylabel="PC 2", title="Codes against embeddings")
        ax.legend(fontsize="small")
        figs.append(("Codes and embeddings in the embeddings' top principal plane.", _png(fig)))
    return figs


def format_html(result: Mapping[str, Any]) -> str:
    """A self-contained page (inline CSS, figures as base64 PNG): no request leaves the file."""
    esc = html.escape
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<title>vqstudy diagnose</title><style>body{font-family:sans-serif;max-width:60em;margin:2em auto;"
             "padding:0 1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;"
             "text-align:left}.healthy{color:#1a7f37}.watch{color:#9a6700}.collapsed{color:#cf222e}"
             "figure{margin:1em 0}img{max-width:100%}</style></head><body>",
             "<h1>Collapse report</h1>",
             "<pre>" + esc("\n".join(format_text(result).split("\n\n")[0].splitlines())) + "</pre>"]
    for s in result["sections"]:
        parts.append(f"<h2>{esc(s['name'])}</h2><table><tr><th>collapse</th><th>verdict</th></tr>")
        for name in ("tokens", "embeddings"):
            v = s["verdicts"][name]
            parts.append(f"<tr><td>{name}</td><td class='{esc(v.replace('/', ''))}'>{esc(v)}</td></tr>")
        parts.append("</table><h3>Numbers</h3><table>")
        parts += [f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in _rows(s["metrics"])]
        parts.append("</table>")
        for caption, png in _figures(s):
            parts.append(f"<figure><img alt='{esc(caption)}' src='data:image/png;base64,{png}'>"
                         f"<figcaption>{esc(caption)}</figcaption></figure>")
    parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in result["notes"]))
    parts.append("<li>Thresholds: " + esc(", ".join(
        f"{k} collapsed below {v['collapsed_below']:g}, healthy from {v['healthy_from']:g}"
        for k, v in result["thresholds"].items())) + " (derived from the study's runs; see vqstudy.health).</li>")
    parts.append("</ul></body></html>")
    return "\n".join(parts)


def run(codebook: str | Path, embeddings: str | Path | None = None, indices: str | Path | None = None,
        labels: str | Path | None = None, key: str | None = None, json_path: str | Path | None = None,
        report_dir: str | Path | None = None, chunk_rows: int | None = None, sample: int = SPREAD_SAMPLE,
        progress: bool | None = None, write: Callable[[str | Path, str], None] | None = None) -> str:
    """What ``vqstudy diagnose`` does: diagnose, then write --json / --report (only once all succeeded).

    Returns the printed text. ``write`` writes one file atomically (the CLI's).
    """
    _check_outputs(json_path, report_dir)
    result = diagnose_files(codebook, embeddings, indices, labels, key, chunk_rows, sample, progress)
    text = format_text(result)
    outputs = []
    if report_dir is not None:
        outputs.append((Path(report_dir) / "index.html", format_html(result)))
    if json_path is not None:
        outputs.append((Path(json_path), to_json(result)))
    if outputs and write is None:
        from .io import write_atomic as write
    for path, content in outputs:
        write(path, content)
    return text + "".join(f"\nwrote {p}" for p, _ in outputs)
