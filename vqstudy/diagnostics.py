"""Collapse diagnostics for any vector quantizer.

:func:`diagnose` takes what every quantizer has -- the continuous embeddings,
the code index of each, and the codebook (plus, optionally, a label per
embedding) -- and measures both collapses of the paper:

- *tokens collapse*: utilization, dead codes, perplexity and usage entropy over
  the whole set (never one batch), codebook spread, mode entropy H and
  clusters covered, coverage between codes and embeddings;
- *embeddings collapse*: effective dimension (99% PCA variance), participation
  ratio and spectrum of the embeddings and of the codebook, cluster
  separation, and the water-filling predicted dimension for K codes.

Every pass over the embeddings is chunked, so memory stays bounded
(``chunk_size x K`` distances) for 10^6 embeddings and thousands of codes.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.spatial.distance import pdist

from .quantize import _check_chunk, check_finite, search_blocks

EXPLAINED_VARIANCE = 0.99


def _as_tensor(x: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(dtype) if dtype is not None else t


def _as_integers(x: Any, name: str) -> torch.Tensor:
    """``x`` flattened to int64; floats must hold whole numbers (truncating 2.7 to 2 would hide a bug)."""
    t = _as_tensor(x).reshape(-1)
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{name} must be integers, got dtype {t.dtype}")
    if t.is_floating_point():
        bad = ~(torch.isfinite(t) & (t == t.round()))
        if bool(bad.any()):
            raise ValueError(f"{name} must be integers, got {int(bad.sum())} non-integer value(s) "
                             f"such as {t[bad][0].item()!r}")
    return t.long()


# --- usage --------------------------------------------------------------------------------------

def usage_counts(indices: Any, codebook_size: int) -> torch.Tensor:
    """How many vectors each code received (float64, length K)."""
    idx = _as_integers(indices, "indices").cpu()
    if idx.numel() and (idx.min() < 0 or idx.max() >= codebook_size):
        raise ValueError(f"indices must lie in [0, {codebook_size}), got range "
                         f"[{int(idx.min())}, {int(idx.max())}]")
    return torch.bincount(idx, minlength=codebook_size).double()


def usage_entropy(counts: torch.Tensor) -> float:
    """Shannon entropy (nats) of the usage distribution p_k = n_k / N."""
    total = counts.sum()
    if total <= 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * p.log()).sum())


def perplexity(counts: torch.Tensor) -> float:
    """exp(usage entropy): the effective number of codes in use, in [1, K]."""
    return math.exp(usage_entropy(counts))


# --- spectra ------------------------------------------------------------------------------------

def covariance_eigenvalues(x: Any, chunk_size: int = 65536) -> np.ndarray:
    """Eigenvalues (descending, float64) of the covariance of the rows of ``x``, accumulated in chunks."""
    x = _as_tensor(x)
    x = x.reshape(-1, x.shape[-1])
    n, d = x.shape
    if n < 2:
        return np.zeros(d)
    total = torch.zeros(d, dtype=torch.float64, device=x.device)
    gram = torch.zeros(d, d, dtype=torch.float64, device=x.device)
    for start in range(0, n, chunk_size):
        rows = x[start:start + chunk_size].double()
        total += rows.sum(0)
        gram += rows.t() @ rows
    mean = total / n
    cov = (gram - n * torch.outer(mean, mean)) / (n - 1)
    eig = np.linalg.eigvalsh(cov.cpu().numpy())[::-1]
    return np.clip(eig, 0.0, None)


def effective_dimension(eigenvalues: np.ndarray, explained: float = EXPLAINED_VARIANCE) -> int:
    """Smallest k whose top-k principal components explain ``explained`` of the variance (0 if none)."""
    total = float(np.sum(eigenvalues))
    if total <= 0:
        return 0
    share = np.cumsum(eigenvalues) / total
    return int(np.searchsorted(share, explained - 1e-12) + 1)


def participation_ratio(eigenvalues: np.ndarray) -> float:
    """(sum lambda)^2 / sum lambda^2: a smooth count of the dimensions in use."""
    sq = float(np.sum(np.square(eigenvalues)))
    return float(np.sum(eigenvalues)) ** 2 / sq if sq > 0 else 0.0


def water_filling_dimension(eigenvalues: np.ndarray, codebook_size: int) -> int:
    """Dimensions a rate of log2 K bits fills under reverse water-filling.

    Solves sum_i max(0, 1/2 log2(lambda_i / theta)) = log2 K for the water
    level theta and returns #{lambda_i > theta}.
    """
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64)[np.asarray(eigenvalues) > 0])[::-1]
    rate = math.log2(codebook_size)
    if rate <= 0 or lam.size == 0:
        return 0
    logs = np.log2(lam)
    for m in range(1, lam.size + 1):
        log_theta = (logs[:m].sum() - 2.0 * rate) / m
        next_ok = m == lam.size or logs[m] <= log_theta
        if logs[m - 1] > log_theta and next_ok:
            return m
    return int(lam.size)


# --- codebook geometry --------------------------------------------------------------------------

EXACT_PAIRS_UP_TO = 4096  # codes; above, Euclidean pairs use the matrix-product form (float64, ~1e-12 relative)


def codebook_spread(codebook: Any, chunk_size: int = 1024) -> tuple[float, float]:
    """Mean pairwise cosine distance (1 - cos) and Euclidean distance over distinct code pairs."""
    c = _as_tensor(codebook).double()
    k = c.shape[0]
    if k < 2:
        return 0.0, 0.0
    return cosine_spread(c), euclidean_spread(c, chunk_size)


def cosine_spread(codebook: Any) -> float:
    """Mean pairwise cosine distance (1 - cos) over distinct code pairs (0 for fewer than two codes)."""
    c = _as_tensor(codebook).double()
    k = c.shape[0]
    if k < 2:
        return 0.0
    unit = torch.nn.functional.normalize(c, dim=1)
    cos_sum = (unit.sum(0).pow(2).sum() - unit.pow(2).sum()).item()  # sum over i != j of cos
    return 1.0 - cos_sum / (k * (k - 1))


def euclidean_spread(codebook: Any, chunk_size: int = 1024) -> float:
    """Mean pairwise Euclidean distance over distinct code pairs (0 for fewer than two codes)."""
    c = _as_tensor(codebook).double()
    k = c.shape[0]
    if k < 2:
        return 0.0
    mode = "donot_use_mm_for_euclid_dist" if k <= EXACT_PAIRS_UP_TO else "use_mm_for_euclid_dist"
    euclid_sum = 0.0
    for start in range(0, k, chunk_size):
        d = torch.cdist(c[start:start + chunk_size], c, compute_mode=mode)
        euclid_sum += d.sum().item()
    return euclid_sum / (k * (k - 1))


def mean_pairwise_distance(x: Any, sample: int | None = None, seed: int = 0) -> tuple[float, int]:
    """Mean Euclidean distance over distinct pairs of rows, and how many rows it used.

    With ``sample`` and more rows than that, a fixed seeded subset of ``sample``
    rows (numpy's generator, so torch's global random state is untouched)
    estimates it; otherwise every pair counts and the value is exact.
    """
    v = _as_tensor(x).double()
    v = v.reshape(-1, v.shape[-1])
    if sample is not None and v.shape[0] > sample:
        v = v[torch.from_numpy(spread_sample_rows(v.shape[0], sample, seed)).to(v.device)]
    n = v.shape[0]
    if n < 2:
        return 0.0, n
    return float(pdist(v.cpu().numpy()).mean()), n  # scipy: each pair once, float64


def spread_sample_rows(n: int, sample: int, seed: int = 0) -> np.ndarray:
    """The sorted rows :func:`mean_pairwise_distance` uses out of ``n`` (all of them when ``n <= sample``)."""
    if n <= sample:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))


SPREAD_SAMPLE = 2048  # rows of the embeddings behind their mean pairwise distance (exact below this)


def scale_free_metrics(codebook: Any, counts: torch.Tensor, embed_mean: Any, embed_spread: float,
                       codebook_euclidean: float | None = None) -> dict[str, float]:
    """Codebook geometry that does not depend on the latent scale or on dead codes.

    - ``codebook_centered_cosine_spread``: mean pairwise cosine distance of the
      codes after subtracting the embeddings' mean (the uncentered one mostly
      measures where the data sit relative to the origin);
    - ``codebook_relative_spread``: the codes' mean pairwise Euclidean distance
      over the embeddings' own (``embed_spread``), so models of different scale
      compare;
    - ``used_*``: the same, and the effective dimension and participation
      ratio, over the codes that received at least one vector (dead codes
      left at their init would otherwise decide them).

    ``codebook_euclidean``: the whole codebook's mean pairwise distance when
    already known (it is the slow part for large K).
    """
    c = _as_tensor(codebook).double().cpu()
    mean = _as_tensor(embed_mean).double().cpu().reshape(1, -1)
    used = c[counts.cpu() > 0]
    out: dict[str, float] = {}
    for prefix, codes, euclid in (("", c, codebook_euclidean), ("used_", used, None)):
        euclid = euclidean_spread(codes) if euclid is None else euclid
        out[f"{prefix}codebook_centered_cosine_spread"] = cosine_spread(codes - mean)
        out[f"{prefix}codebook_relative_spread"] = euclid / embed_spread if embed_spread > 0 else float("nan")
    out["used_codebook_euclidean_spread"] = euclid
    used_eig = covariance_eigenvalues(used)
    out["used_codebook_effective_dim"] = effective_dimension(used_eig)
    out["used_codebook_participation_ratio"] = participation_ratio(used_eig)
    return out


# --- labels -------------------------------------------------------------------------------------

def _expand_labels(labels: Any, n_vectors: int) -> torch.Tensor:
    lab = _as_integers(labels, "labels").cpu()
    if lab.numel() == n_vectors:
        return lab
    if lab.numel() and n_vectors % lab.numel() == 0:  # one label per image, many vectors per image
        return lab.repeat_interleave(n_vectors // lab.numel())
    raise ValueError(f"labels: expected {n_vectors} labels (or one per item of a grid), got {lab.numel()}")


def mode_entropy(indices: torch.Tensor, labels: torch.Tensor, codebook_size: int) -> dict[str, Any]:
    """Assign each used code to the majority cluster of its vectors; entropy of codes over clusters.

    H = -sum_k p_k log p_k with p_k the share of used codes serving cluster k;
    the ideal is log(#clusters). Ties go to the lowest label.
    """
    n_clusters = int(labels.max()) + 1
    joint = torch.bincount(indices * n_clusters + labels, minlength=codebook_size * n_clusters)
    return mode_entropy_from_counts(joint.reshape(codebook_size, n_clusters))


def mode_entropy_from_counts(joint: torch.Tensor) -> dict[str, Any]:
    """:func:`mode_entropy` from the (K, clusters) table of how many vectors of each cluster each code got."""
    n_clusters = joint.shape[1]
    used = joint.sum(1) > 0
    owner = joint[used].argmax(1)
    codes_per_cluster = torch.bincount(owner, minlength=n_clusters).double()
    return {
        "mode_entropy": usage_entropy(codes_per_cluster),
        "mode_entropy_max": math.log(n_clusters),
        "clusters_covered": int((codes_per_cluster > 0).sum()),
        "n_clusters": n_clusters,
        "codes_per_cluster": codes_per_cluster.long().tolist(),
    }


def class_geometry(x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """Distance of each vector to its class centroid, the median of those, and the Fisher ratio.

    Fisher ratio = trace(between-class scatter) / trace(within-class scatter):
    high when classes are well separated, ~0 when the encoder merges them.
    """
    n_classes = int(labels.max()) + 1
    xd = x.double()
    lab = labels.to(x.device)
    sums = torch.zeros(n_classes, x.shape[1], dtype=torch.float64, device=x.device).index_add_(0, lab, xd)
    counts = torch.zeros(n_classes, dtype=torch.float64, device=x.device).index_add_(
        0, lab, torch.ones_like(lab, dtype=torch.float64))
    centroids = sums / counts.clamp_min(1)[:, None]
    to_centroid = (xd - centroids[lab]).pow(2).sum(1).sqrt()
    within = float(to_centroid.pow(2).sum())
    grand = xd.mean(0)
    between = float((counts * (centroids - grand).pow(2).sum(1)).sum())
    fisher = between / within if within > 0 else float("inf")
    return to_centroid, float(np.median(to_centroid.cpu().numpy())), fisher


# --- distances between embeddings and codes -----------------------------------------------------

@torch.no_grad()
def nearest_distances(x: torch.Tensor, codebook: torch.Tensor, chunk_size: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """In one chunked pass: each vector's distance to its nearest code, and each code's to its nearest vector."""
    _check_chunk(chunk_size)
    c = codebook.to(x.dtype)
    c_sq, ct = c.pow(2).sum(1), c.t()
    row_min = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    col_min = torch.full((c.shape[0],), float("inf"), dtype=x.dtype, device=x.device)
    # The blocks of nearest_code (cache-sized, the same bits as one addmm per chunk) into one reused buffer;
    # amin is min's values, exactly, without min's index bookkeeping.
    spans = search_blocks(x, c.shape[0], chunk_size)
    buf = torch.empty(max((b - a for a, b in spans), default=0), c.shape[0], dtype=x.dtype, device=x.device)
    for start, stop in spans:
        rows = x[start:stop]
        d = torch.addmm(c_sq, rows, ct, alpha=-2.0, out=buf[:stop - start]).add_(rows.pow(2).sum(1, keepdim=True))
        row_min[start:stop] = d.amin(1)
        col_min = torch.minimum(col_min, d.amin(0))
    return row_min.clamp_min_(0).sqrt_(), col_min.clamp_min_(0).sqrt_()


# --- the one entry point ------------------------------------------------------------------------

def diagnose(embeddings: Any, indices: Any, codebook: Any, labels: Any = None,
             chunk_size: int = 8192) -> dict[str, Any]:
    """Every collapse metric of the study for one (embeddings, indices, codebook[, labels]).

    ``embeddings``: (..., D) continuous encoder outputs; ``indices``: the code
    each was assigned (any shape with the same number of vectors);
    ``codebook``: (K, D) (a leading axis of size 1 is dropped); ``labels``: one
    per vector, or one per item when each item holds a grid of vectors.
    Returns a flat dict of numbers (plus the spectra as lists). Embeddings and
    codebook are measured in float32 and must be finite (a diverged model has
    no diagnostics); indices and labels must be integers (whole-valued floats
    are accepted). Each violation is a ValueError naming the argument.
    """
    _check_chunk(chunk_size)
    z = _as_tensor(embeddings).float()
    z = z.reshape(-1, z.shape[-1])
    c = _as_tensor(codebook).float().to(z.device)
    if c.ndim == 3 and c.shape[0] == 1:
        c = c[0]
    if c.ndim != 2 or c.shape[1] != z.shape[1]:
        raise ValueError(f"codebook must be (K, {z.shape[1]}) to match the embeddings, got {tuple(c.shape)}")
    why = "the diagnostics of a diverged model are undefined"
    check_finite("embeddings", z, why)
    check_finite("codebook", c, why)
    k = c.shape[0]
    idx = _as_integers(indices, "indices")
    if idx.numel() != z.shape[0]:
        raise ValueError(f"got {idx.numel()} indices for {z.shape[0]} embeddings")
    counts = usage_counts(idx, k)
    used = int((counts > 0).sum())
    out: dict[str, Any] = {
        "n_vectors": int(z.shape[0]),
        "codebook_size": k,
        "used_codes": used,
        "dead_codes": k - used,
        "utilization": used / k,
        "perplexity": perplexity(counts),
        "usage_entropy": usage_entropy(counts),
    }
    out["codebook_cosine_spread"], out["codebook_euclidean_spread"] = codebook_spread(c)

    q_err = 0.0
    idx_dev = idx.to(z.device)
    for start in range(0, z.shape[0], chunk_size):
        rows = z[start:start + chunk_size].double()
        q_err += (rows - c.double()[idx_dev[start:start + chunk_size]]).pow(2).sum().item()
    out["quantization_error"] = q_err / max(z.shape[0], 1)

    z_eig = covariance_eigenvalues(z)
    c_eig = covariance_eigenvalues(c)
    out.update({
        "embed_total_variance": float(z_eig.sum()),
        "embed_effective_dim": effective_dimension(z_eig),
        "embed_participation_ratio": participation_ratio(z_eig),
        "codebook_effective_dim": effective_dimension(c_eig),
        "codebook_participation_ratio": participation_ratio(c_eig),
        "water_filling_dim": water_filling_dimension(z_eig, k),
        "embed_spectrum": (z_eig / z_eig.sum()).tolist() if z_eig.sum() > 0 else z_eig.tolist(),
        "codebook_spectrum": (c_eig / c_eig.sum()).tolist() if c_eig.sum() > 0 else c_eig.tolist(),
    })

    embed_spread, spread_rows = mean_pairwise_distance(z, SPREAD_SAMPLE)
    out["embed_euclidean_spread"] = embed_spread
    out["embed_spread_sample"] = spread_rows
    out["embedding_dim"] = int(z.shape[1])
    out.update(scale_free_metrics(c, counts, z.double().mean(0) if z.shape[0] else torch.zeros(z.shape[1]),
                                  embed_spread, out["codebook_euclidean_spread"]))

    to_code, to_embedding = nearest_distances(z, c, chunk_size)
    out["embedding_to_code_distance"] = float(to_code.double().mean())
    out["code_to_embedding_distance"] = float(to_embedding.double().mean())

    if labels is not None:
        lab = _expand_labels(labels, z.shape[0])
        if lab.min() < 0:
            raise ValueError("labels must be non-negative integers")
        out.update(mode_entropy(idx.cpu(), lab, k))
        _, radius, fisher = class_geometry(z, lab)
        out["within_cluster_radius"] = radius
        out["cluster_separation"] = fisher
        out["coverage"] = float((to_code <= radius).double().mean())
    return out


SCALAR_METRICS = (
    "utilization", "used_codes", "dead_codes", "perplexity", "usage_entropy",
    "codebook_cosine_spread", "codebook_euclidean_spread", "quantization_error",
    "embed_effective_dim", "embed_participation_ratio", "codebook_effective_dim",
    "codebook_participation_ratio", "water_filling_dim", "mode_entropy", "clusters_covered",
    "cluster_separation", "coverage", "code_to_embedding_distance",
    "codebook_centered_cosine_spread", "codebook_relative_spread", "used_codebook_centered_cosine_spread",
    "used_codebook_relative_spread", "used_codebook_effective_dim", "used_codebook_participation_ratio",
)


def scalar_metrics(diag: dict[str, Any]) -> dict[str, float]:
    """The numeric, table-friendly part of a :func:`diagnose` result."""
    return {k: v for k, v in diag.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
