"""count_modes: finds well-separated clusters, is scale-free, deterministic, and rejects bad input."""
import math

import numpy as np
import pytest
import torch

from vqstudy import gaussian_mixture
from vqstudy.analysis import count_modes


def test_finds_well_separated_clusters():
    ds = gaussian_mixture(n_clusters=4, n_per_cluster=200, dim=5, std=0.3, mean_scale=10.0, seed=3)
    result = count_modes(ds.x, k_max=8)
    assert result.modes == 4
    assert result.silhouette > 0.7
    assert sorted(result.scores) == list(range(2, 9))


def test_merged_clusters_count_as_fewer_modes():
    ds = gaussian_mixture(n_clusters=4, n_per_cluster=200, dim=5, std=0.3, mean_scale=10.0, seed=3)
    x = ds.x.clone()
    x[ds.labels == 1] = x[ds.labels == 1] - x[ds.labels == 1].mean(0) + x[ds.labels == 0].mean(0)
    assert count_modes(x, k_max=8).modes == 3


def test_scale_free_and_deterministic():
    ds = gaussian_mixture(n_clusters=3, n_per_cluster=300, dim=4, seed=1)
    a = count_modes(ds.x, k_max=6, sample=500, seed=2)
    b = count_modes(ds.x * 1e-3, k_max=6, sample=500, seed=2)
    c = count_modes(ds.x.numpy(), k_max=6, sample=500, seed=2)
    assert a.modes == b.modes == c.modes
    assert a.scores == pytest.approx(b.scores, abs=1e-6)  # float32 rounding of the scaled copy
    assert a.scores == c.scores


def test_subsample_bounds_the_work():
    x = torch.randn(5000, 3, generator=torch.Generator().manual_seed(0))
    result = count_modes(x, k_max=4, sample=300)
    assert 2 <= result.modes <= 4
    assert result.silhouette < 0.5  # one Gaussian blob: no clear modes


@pytest.mark.parametrize("kwargs, message", [
    ({"k_min": 1}, "k_min"),
    ({"k_max": 1}, "k_max"),
    ({"sample": 1}, "sample"),
    ({"k_max": 60}, "more than k_max"),
])
def test_rejects_bad_arguments(kwargs, message):
    x = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match=message):
        count_modes(x, **kwargs)


def test_rejects_bad_vectors():
    with pytest.raises(ValueError, match="vectors"):
        count_modes(np.zeros(30))
    bad = np.random.default_rng(0).normal(size=(40, 2))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        count_modes(bad, k_max=5)
    with pytest.raises(ValueError, match="distinct"):
        count_modes(np.ones((40, 2)), k_max=5)


def test_embedding_geometry_separates_scale_from_shape():
    from vqstudy.analysis import GEOMETRY_METRICS, embedding_geometry

    ds = gaussian_mixture(n_clusters=4, n_per_cluster=200, dim=5, std=0.3, mean_scale=10.0, seed=3)
    full = embedding_geometry(ds.x, ds.labels, reference_variance=2.0)
    small = embedding_geometry(ds.x * 0.01, ds.labels, reference_variance=2.0)
    assert set(full) == set(GEOMETRY_METRICS)
    assert small["variance ratio"] == pytest.approx(full["variance ratio"] * 1e-4, rel=1e-4)
    for scale_free in ("effective dim", "modes found"):
        assert small[scale_free] == full[scale_free]
    assert small["Fisher ratio"] == pytest.approx(full["Fisher ratio"], rel=1e-4)
    assert full["modes found"] == 4
    assert math.isnan(embedding_geometry(ds.x, ds.labels)["variance ratio"])
    with pytest.raises(ValueError, match="reference_variance"):
        embedding_geometry(ds.x, ds.labels, reference_variance=0.0)
    with pytest.raises(ValueError, match="labels"):
        embedding_geometry(ds.x, ds.labels[:10])


def test_trivial_reconstructor_baselines():
    from vqstudy.analysis import cluster_mean_r2, kmeans_r2

    rng = np.random.default_rng(0)
    centers = rng.normal(0, 10, (4, 3))
    labels = np.repeat(np.arange(4), 50)
    x = centers[labels] + rng.normal(0, 1, (200, 3))
    within = 1 - 1 / x.var(0).mean()           # ~ the share of variance between clusters
    assert abs(cluster_mean_r2(x, labels) - within) < 0.05
    assert kmeans_r2(x, 1) == pytest.approx(0.0, abs=1e-6)   # one code: the global mean
    assert kmeans_r2(x, 4) == pytest.approx(cluster_mean_r2(x, labels), abs=0.02)
    assert kmeans_r2(x, 20) > kmeans_r2(x, 4)
    with pytest.raises(ValueError, match="labels"):
        cluster_mean_r2(x, labels[:10])
    with pytest.raises(ValueError, match="k="):
        kmeans_r2(x, 0)
