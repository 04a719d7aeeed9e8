import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.spatial.distance import pdist
from scipy.stats import entropy
from sklearn.decomposition import PCA

from vqstudy.diagnostics import (codebook_spread, covariance_eigenvalues, diagnose, effective_dimension,
                                 participation_ratio, water_filling_dimension)


def _random_case(seed=0, n=2000, d=6, k=32, classes=5):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d)).astype(np.float32)
    c = rng.normal(size=(k, d)).astype(np.float32)
    idx = ((z[:, None] - c[None]) ** 2).sum(-1).argmin(1)
    labels = rng.integers(0, classes, size=n)
    return z, idx, c, labels


def test_usage_metrics_match_numpy():
    z, idx, c, _ = _random_case()
    d = diagnose(z, idx, c)
    counts = np.bincount(idx, minlength=len(c))
    assert d["used_codes"] == (counts > 0).sum()
    assert d["dead_codes"] == len(c) - (counts > 0).sum()
    assert d["utilization"] == pytest.approx((counts > 0).mean())
    assert d["usage_entropy"] == pytest.approx(entropy(counts / counts.sum()))
    assert d["perplexity"] == pytest.approx(math.exp(entropy(counts / counts.sum())))


def test_perplexity_known_answers():
    c = np.eye(8, dtype=np.float32)
    uniform = np.repeat(np.arange(8), 10)
    assert diagnose(c[uniform], uniform, c)["perplexity"] == pytest.approx(8.0)
    one = np.zeros(80, dtype=int)
    d = diagnose(c[one], one, c)
    assert d["perplexity"] == pytest.approx(1.0) and d["utilization"] == pytest.approx(1 / 8)
    assert d["dead_codes"] == 7


def test_spread_matches_scipy():
    _, _, c, _ = _random_case(k=50)
    cos, euc = codebook_spread(torch.from_numpy(c), chunk_size=7)
    assert cos == pytest.approx(pdist(c, "cosine").mean(), rel=1e-6)
    assert euc == pytest.approx(pdist(c, "euclidean").mean(), rel=1e-6)
    tiny = np.full((10, 4), 1e-3, dtype=np.float32)
    assert codebook_spread(tiny)[1] == pytest.approx(0.0, abs=1e-9)


def test_quantization_error_and_distances():
    z, idx, c, _ = _random_case()
    d = diagnose(z, idx, c, chunk_size=100)
    assert d["quantization_error"] == pytest.approx(((z - c[idx]) ** 2).sum(1).mean(), rel=1e-5)
    full = np.sqrt(((z[:, None].astype(np.float64) - c[None]) ** 2).sum(-1))
    assert d["embedding_to_code_distance"] == pytest.approx(full.min(1).mean(), rel=1e-4)
    assert d["code_to_embedding_distance"] == pytest.approx(full.min(0).mean(), rel=1e-4)


def test_spectrum_matches_sklearn_pca():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 7)) @ rng.normal(size=(7, 7))
    eig = covariance_eigenvalues(torch.from_numpy(x), chunk_size=64)
    ref = PCA().fit(x).explained_variance_
    assert np.allclose(eig, ref, rtol=1e-8)
    share = np.cumsum(ref) / ref.sum()
    assert effective_dimension(eig) == int(np.argmax(share >= 0.99) + 1)
    assert participation_ratio(eig) == pytest.approx(ref.sum() ** 2 / (ref ** 2).sum())


@pytest.mark.parametrize("rank", [1, 3, 5])
def test_rank_r_data_has_effective_dim_r(rank):
    rng = np.random.default_rng(rank)
    x = (rng.normal(size=(3000, rank)) @ rng.normal(size=(rank, 16))).astype(np.float32)
    idx = np.zeros(len(x), dtype=int)
    d = diagnose(x, idx, x[:4])
    assert d["embed_effective_dim"] == rank
    assert d["embed_participation_ratio"] <= rank + 1e-6


def test_water_filling_matches_root_finding():
    lam = np.array([8.0, 4.0, 2.0, 1.0, 0.5, 0.1, 0.01])
    for k in (2, 16, 256, 4096):
        rate = math.log2(k)
        f = lambda log_t: sum(max(0.0, 0.5 * (math.log2(l) - log_t)) for l in lam) - rate
        log_theta = brentq(f, -60, math.log2(lam.max()))
        assert water_filling_dimension(lam, k) == int((np.log2(lam) > log_theta + 1e-9).sum())
    assert water_filling_dimension(lam, 1) == 0
    assert water_filling_dimension(np.ones(4), 2 ** 40) == 4


def test_mode_entropy_and_coverage():
    # 4 well separated clusters, 8 codes: two per cluster for clusters 0,1; four for cluster 2; none for 3
    centers = np.array([[0, 0], [20, 0], [0, 20], [20, 20]], dtype=np.float32)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 100)
    z = centers[labels] + rng.normal(scale=0.5, size=(400, 2)).astype(np.float32)
    codes = np.concatenate([centers[[0, 0, 1, 1, 2, 2, 2, 2]] + 0.01 * np.arange(8)[:, None]]).astype(np.float32)
    idx = ((z[:, None] - codes[None]) ** 2).sum(-1).argmin(1)
    d = diagnose(z, idx, codes, labels)
    used_owner = [0, 1, 2]  # cluster 3's points go to the nearest codes of other clusters
    assert d["clusters_covered"] <= 4
    counts = np.array(d["codes_per_cluster"])
    p = counts[counts > 0] / counts.sum()
    assert d["mode_entropy"] == pytest.approx(-(p * np.log(p)).sum())
    assert d["mode_entropy_max"] == pytest.approx(math.log(4))
    assert set(np.flatnonzero(counts)) >= set(used_owner)
    # independent coverage: nearest-code distance within the median distance to the own centroid
    cent = np.stack([z[labels == k].mean(0) for k in range(4)])
    radius = np.median(np.linalg.norm(z - cent[labels], axis=1))
    nearest = np.sqrt(((z[:, None] - codes[None]) ** 2).sum(-1)).min(1)
    assert d["within_cluster_radius"] == pytest.approx(radius, rel=1e-5)
    assert d["coverage"] == pytest.approx((nearest <= radius).mean())
    # cluster 3 (a quarter of the points) sits far from every code: none of it is covered
    assert (nearest[labels == 3] > radius).all() and d["coverage"] < 0.75
    assert d["cluster_separation"] > 100


def test_grid_labels_expand_and_bad_shapes_fail():
    z = np.random.default_rng(0).normal(size=(10, 4, 4, 3)).astype(np.float32)
    c = z.reshape(-1, 3)[:5]
    idx = np.zeros((10, 4, 4), dtype=int)
    d = diagnose(z, idx, c[None], labels=np.arange(10) % 2)
    assert d["n_vectors"] == 160
    with pytest.raises(ValueError, match="indices"):
        diagnose(z, idx[:5], c)
    with pytest.raises(ValueError, match="codebook must be"):
        diagnose(z, idx, c[:, :2])
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        diagnose(z, idx + 7, c)


@pytest.mark.parametrize("where, value", [("embeddings", float("nan")), ("embeddings", float("inf")),
                                          ("codebook", float("nan")), ("codebook", float("-inf"))])
def test_non_finite_embeddings_or_codebook_fail_naming_the_argument(where, value):
    z, idx, c, _ = _random_case(n=200)
    z, c = z.copy(), c.copy()
    (z if where == "embeddings" else c)[3, 1] = value
    with pytest.raises(ValueError, match=rf"invalid {where}: 1 non-finite value\(s\) \(NaN or Inf\), "
                                         r"first in row\(s\) \[3\]"):
        diagnose(z, idx, c)


def test_indices_and_labels_must_be_integers():
    z, idx, c, labels = _random_case(n=200)
    with pytest.raises(ValueError, match=r"indices must be integers, got 200 non-integer value\(s\) such as"):
        diagnose(z, idx + 0.5, c)
    with pytest.raises(ValueError, match="labels must be integers"):
        diagnose(z, idx, c, labels=labels + 0.25)
    with pytest.raises(ValueError, match="indices must be integers, got dtype torch.bool"):
        diagnose(z, idx > 3, c)
    whole = diagnose(z, idx.astype(np.float64), c, labels=labels.astype(np.float32))
    assert whole == diagnose(z, idx, c, labels=labels)          # whole-valued floats are the same integers


def test_bounded_memory_on_large_input():
    # 200k x 512 codes through 4k-row chunks: the distance matrix never exceeds chunk x K
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(200_000, 8, generator=gen)
    c = torch.randn(512, 8, generator=gen)
    d = diagnose(z, torch.zeros(200_000, dtype=torch.long), c, chunk_size=4096)
    assert d["n_vectors"] == 200_000 and math.isfinite(d["code_to_embedding_distance"])


def test_nearest_distances_equal_the_full_distance_matrix_bit_for_bit():
    """One reused chunk buffer and amin give exactly what the plain N x K expression gives."""
    from vqstudy.diagnostics import nearest_distances

    gen = torch.Generator().manual_seed(2)
    x, c = torch.randn(1000, 9, generator=gen), torch.randn(37, 9, generator=gen)
    full = torch.addmm(c.pow(2).sum(1), x, c.t(), alpha=-2.0).add_(x.pow(2).sum(1, keepdim=True))
    rows, cols = nearest_distances(x, c, chunk_size=1000)
    assert torch.equal(rows, full.min(1).values.clamp_min(0).sqrt()) and torch.equal(
        cols, full.min(0).values.clamp_min(0).sqrt())
    chunked = nearest_distances(x, c, chunk_size=64)
    assert torch.allclose(chunked[0], rows, atol=1e-5) and torch.allclose(chunked[1], cols, atol=1e-5)
