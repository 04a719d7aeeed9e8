"""The scale-free metrics of diagnose(): known answers on constructed data."""
import numpy as np
import pytest
from scipy.spatial.distance import pdist

from vqstudy.diagnostics import SPREAD_SAMPLE, diagnose, mean_pairwise_distance

SCALE_FREE = ("codebook_centered_cosine_spread", "codebook_relative_spread", "used_codebook_centered_cosine_spread",
              "used_codebook_relative_spread", "used_codebook_effective_dim", "used_codebook_participation_ratio")


def _case(seed=0, n=1500, d=6, k=24):
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=(n, d)) * np.linspace(3, 0.2, d) + 5.0).astype(np.float32)  # off-centre, anisotropic
    c = z[rng.choice(n, k, replace=False)] + rng.normal(scale=0.1, size=(k, d)).astype(np.float32)
    idx = ((z[:, None] - c[None]) ** 2).sum(-1).argmin(1)
    return z, idx, c


def test_scaling_embeddings_and_codebook_leaves_scale_free_metrics_unchanged():
    z, idx, c = _case()
    base, scaled = diagnose(z, idx, c), diagnose(z * 10, idx, c * 10)
    for key in SCALE_FREE:
        assert scaled[key] == pytest.approx(base[key], rel=1e-5), key
    assert scaled["codebook_euclidean_spread"] == pytest.approx(10 * base["codebook_euclidean_spread"], rel=1e-5)


def test_shifting_everything_leaves_centered_cosine_unchanged_but_not_uncentered():
    z, idx, c = _case()
    base, shifted = diagnose(z, idx, c), diagnose(z + 100, idx, c + 100)
    assert shifted["codebook_centered_cosine_spread"] == pytest.approx(base["codebook_centered_cosine_spread"], rel=1e-4)
    assert shifted["codebook_cosine_spread"] < 0.1 * base["codebook_cosine_spread"]


def test_dead_codes_do_not_change_used_only_metrics():
    z, idx, c = _case()
    far = np.full((40, c.shape[1]), 1e3, dtype=np.float32) + np.random.default_rng(1).normal(size=(40, c.shape[1]))
    base = diagnose(z, idx, c)
    with_dead = diagnose(z, idx, np.vstack([c, far.astype(np.float32)]))
    assert with_dead["dead_codes"] == base["dead_codes"] + 40
    for key in ("used_codebook_centered_cosine_spread", "used_codebook_relative_spread",
                "used_codebook_effective_dim", "used_codebook_participation_ratio", "used_codebook_euclidean_spread"):
        assert with_dead[key] == pytest.approx(base[key], rel=1e-9), key
    assert with_dead["codebook_relative_spread"] > 10 * base["codebook_relative_spread"]


def test_known_answers():
    z, idx, c = _case()
    d = diagnose(z, idx, c)
    used = c[np.bincount(idx, minlength=len(c)) > 0]
    centered = c - z.astype(np.float64).mean(0)
    assert d["codebook_centered_cosine_spread"] == pytest.approx(pdist(centered, "cosine").mean(), rel=1e-6)
    assert d["embed_euclidean_spread"] == pytest.approx(pdist(z.astype(np.float64)).mean(), rel=1e-9)
    assert d["embed_spread_sample"] == len(z)  # below SPREAD_SAMPLE every pair counts
    assert d["codebook_relative_spread"] == pytest.approx(pdist(c).mean() / pdist(z).mean(), rel=1e-5)
    assert d["used_codebook_euclidean_spread"] == pytest.approx(pdist(used).mean(), rel=1e-6)
    # codes equal to embeddings drawn from the same distribution: spread ratio near 1
    assert 0.8 < d["codebook_relative_spread"] < 1.2


def test_large_sets_use_a_fixed_seeded_sample():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SPREAD_SAMPLE + 500, 3))
    a, rows = mean_pairwise_distance(x, SPREAD_SAMPLE)
    b, _ = mean_pairwise_distance(x, SPREAD_SAMPLE)
    assert rows == SPREAD_SAMPLE and a == b
    assert a == pytest.approx(pdist(x).mean(), rel=0.02)
