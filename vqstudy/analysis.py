"""Analyses of embeddings that need the vectors themselves, not only :func:`vqstudy.diagnostics.diagnose`.

``count_modes`` answers "how many clusters can be told apart in these
vectors?" without using the labels: k-means for every k in a range, the k
with the best silhouette wins. It is scale-free (multiplying every vector by
a constant changes nothing), so it measures how *distinguishable* the modes
are, not how spread out the vectors are. ``embedding_geometry`` puts it
beside the scale and spectrum measures of one set of vectors.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .diagnostics import class_geometry, covariance_eigenvalues, effective_dimension, participation_ratio
from .quantize import kmeans, nearest_code


@dataclass
class ModeCount:
    """The result of :func:`count_modes`."""
    modes: int                      # the k with the highest silhouette
    silhouette: float               # that silhouette, in [-1, 1]
    scores: dict[int, float]        # silhouette of every k tried


def _numpy(x) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim < 2:
        raise ValueError(f"count_modes needs vectors (n, d), got shape {arr.shape}")
    return arr.reshape(-1, arr.shape[-1]).astype(np.float64)


def count_modes(x, k_min: int = 2, k_max: int = 15, sample: int = 2000, seed: int = 0,
                n_init: int = 4) -> ModeCount:
    """Number of distinguishable modes of the rows of ``x``: the k in [k_min, k_max] whose k-means
    partition has the highest mean silhouette (ties go to the smaller k).

    A fixed random subsample of ``sample`` rows (all rows if fewer) keeps the
    silhouette's O(n^2) cost small; ``seed`` fixes the subsample and k-means.
    Silhouette needs k >= 2, so a unimodal cloud reports a low silhouette
    rather than one mode: read ``silhouette`` beside ``modes``.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import pairwise_distances, silhouette_score
    from threadpoolctl import threadpool_limits

    if isinstance(k_min, bool) or not isinstance(k_min, int) or k_min < 2:
        raise ValueError(f"invalid k_min={k_min!r}: must be an integer >= 2 (silhouette needs two clusters)")
    if isinstance(k_max, bool) or not isinstance(k_max, int) or k_max < k_min:
        raise ValueError(f"invalid k_max={k_max!r}: must be an integer >= k_min={k_min}")
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 2:
        raise ValueError(f"invalid sample={sample!r}: must be an integer >= 2")
    data = _numpy(x)
    if len(data) > sample:
        rows = np.sort(np.random.default_rng(seed).choice(len(data), sample, replace=False))
        data = data[rows]
    if len(data) <= k_max:
        raise ValueError(f"count_modes needs more than k_max={k_max} rows, got {len(data)}")
    if not np.isfinite(data).all():
        raise ValueError("count_modes: the vectors contain NaN or infinity")
    distinct = len(np.unique(data, axis=0))
    if distinct <= k_min:
        raise ValueError(f"count_modes needs more than k_min={k_min} distinct rows, got {distinct}")
    scores: dict[int, float] = {}
    # one thread: on a busy machine OpenMP/BLAS threads beside torch's make k-means ~50x slower,
    # and a fixed thread count keeps the result the same everywhere
    with threadpool_limits(1):
        dist = pairwise_distances(data)  # once, not once per k
        for k in range(k_min, min(k_max, distinct - 1) + 1):
            labels = KMeans(k, n_init=n_init, random_state=seed).fit_predict(data)
            n_found = len(np.unique(labels))
            scores[k] = float(silhouette_score(dist, labels, metric="precomputed")) if n_found > 1 else -1.0
    best = max(scores, key=lambda k: (scores[k], -k))
    return ModeCount(best, scores[best], scores)


GEOMETRY_METRICS = ("total variance", "variance ratio", "effective dim", "participation ratio", "Fisher ratio",
                    "modes found", "silhouette")


def embedding_geometry(x, labels, reference_variance: float | None = None, seed: int = 0) -> dict[str, float]:
    """Scale and shape of a set of vectors, one row of chapter 1's tables (:data:`GEOMETRY_METRICS`).

    The total variance and, with ``reference_variance`` (the input's), its ratio to it: how much the
    encoder shrinks the data (a scale measure, NaN without a reference); the effective dimension and
    participation ratio of the covariance spectrum; the Fisher ratio of the labelled clusters; and the
    label-free :func:`count_modes` (``seed`` fixes its subsample, so every set of vectors is judged on the
    same points). All but the first two are scale-free.
    """
    if reference_variance is not None and not reference_variance > 0:
        raise ValueError(f"invalid reference_variance={reference_variance!r}: must be a positive number or None")
    z = torch.as_tensor(_numpy(x))
    lab = torch.as_tensor(np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)).long()
    if lab.shape != (z.shape[0],):
        raise ValueError(f"labels: expected one label per vector ({z.shape[0]}), got shape {tuple(lab.shape)}")
    eig = covariance_eigenvalues(z)
    total = float(eig.sum())
    modes = count_modes(z, seed=seed)
    return {"total variance": total,
            "variance ratio": total / reference_variance if reference_variance else float("nan"),
            "effective dim": effective_dimension(eig), "participation ratio": participation_ratio(eig),
            "Fisher ratio": class_geometry(z, lab)[2], "modes found": modes.modes, "silhouette": modes.silhouette}


def _r2(x: np.ndarray, recon: np.ndarray) -> float:
    return float(1.0 - ((x - recon) ** 2).mean() / x.var(0).mean())


def cluster_mean_r2(x, labels) -> float:
    """R^2 of the trivial reconstructor that outputs each vector's cluster mean (chapter 2: the baseline a
    collapsed tokenizer's R^2 must beat before "reconstructions look fine" means anything)."""
    arr = _numpy(x)
    lab = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if lab.shape[0] != arr.shape[0]:
        raise ValueError(f"labels: expected {arr.shape[0]} labels, got {lab.shape[0]}")
    means = np.zeros_like(arr)
    for c in np.unique(lab):
        means[lab == c] = arr[lab == c].mean(0)
    return _r2(arr, means)


def kmeans_r2(x, k: int, seed: int = 0) -> float:
    """R^2 of k-means with ``k`` codes on the raw vectors (chapter 2: a tokenizer using k codes should do
    at least this well)."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"invalid k={k!r}: must be an integer >= 1")
    arr = _numpy(x)
    t = torch.from_numpy(arr).float()
    centers = kmeans(t, k, seed=seed)
    recon = centers[nearest_code(t, centers)].double().numpy()
    return _r2(arr, recon)
