"""The optional FAISS backend of nearest_code and kmeans: the torch path's indices up to float ties."""
import pytest
import torch

from vqstudy import quantize
from vqstudy.quantize import faiss_usable, kmeans, nearest_code

faiss = pytest.importorskip("faiss")


def _data(n=5000, d=24, k=300, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    return x, x[torch.randperm(n, generator=gen)[:k]] + 0.05 * torch.randn(k, d, generator=gen)


def _ties_only(x, c, a, b, rel=1e-5):
    """Every index that differs points at two codes equally near in float64."""
    diff = a != b
    xd, cd = x[diff].double(), c.double()
    da, db = (xd - cd[a[diff]]).pow(2).sum(1), (xd - cd[b[diff]]).pow(2).sum(1)
    return bool(((da - db).abs() <= rel * (xd.pow(2).sum(1) + cd[a[diff]].pow(2).sum(1))).all())


@pytest.mark.parametrize("d", [4, 24, 96])
def test_faiss_backend_gives_the_torch_indices_up_to_ties(monkeypatch, d):
    monkeypatch.setattr(quantize.numerics, "active", lambda: False)
    x, c = _data(d=d)
    assert faiss_usable(x, c)
    ref, ref_dist = nearest_code(x, c, return_distance=True)
    idx, dist = nearest_code(x, c, return_distance=True, backend="faiss")
    assert idx.dtype == torch.long and idx.shape == ref.shape
    assert _ties_only(x, c, ref, idx)
    assert (idx == ref).float().mean() > 0.999
    assert torch.allclose(dist, ref_dist, rtol=1e-4, atol=1e-4) and bool((dist >= 0).all())
    assert torch.equal(nearest_code(x, c, backend="faiss"), idx)


def test_exact_ties_agree_on_duplicated_codes(monkeypatch):
    monkeypatch.setattr(quantize.numerics, "active", lambda: False)
    x, c = _data(n=500, d=8, k=20)
    c = torch.cat([c, c])  # every vector is equally near a code and its copy
    idx = nearest_code(x, c, backend="faiss")
    assert _ties_only(x, c, nearest_code(x, c), idx)


def test_faiss_backend_falls_back_to_the_torch_path(monkeypatch):
    x, c = _data(n=300, k=20)

    def refuse(*args, **kwargs):
        raise AssertionError("the torch path should have answered")
    monkeypatch.setattr(quantize, "_nearest_faiss", refuse)
    monkeypatch.setattr(quantize.numerics, "active", lambda: False)
    assert not faiss_usable(x.double(), c.double())  # FAISS searches float32 only
    assert torch.equal(nearest_code(x.double(), c, backend="faiss"), nearest_code(x.double(), c))
    monkeypatch.setattr(quantize.numerics, "active", lambda: True)  # pinned numerics: never FAISS
    assert not faiss_usable(x, c)
    assert torch.equal(nearest_code(x, c, backend="faiss"), nearest_code(x, c))
    assert torch.equal(kmeans(x, 5, iters=3, backend="faiss"), kmeans(x, 5, iters=3))


def test_invalid_backend_is_named():
    x, c = _data(n=50, k=5)
    with pytest.raises(ValueError, match=r"invalid backend='cuda': allowed values are 'torch', 'faiss'"):
        nearest_code(x, c, backend="cuda")
    with pytest.raises(ValueError, match=r"invalid backend='gpu'"):
        kmeans(x, 3, backend="gpu")


def test_kmeans_faiss_backend_matches_the_torch_path(monkeypatch):
    monkeypatch.setattr(quantize.numerics, "active", lambda: False)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3000, 8, generator=gen) + 4 * torch.randint(0, 3, (3000, 1), generator=gen).float()
    assert torch.allclose(kmeans(x, 16, iters=2, seed=1, backend="faiss"), kmeans(x, 16, iters=2, seed=1),
                          atol=1e-5)  # same seeding, same first assignments
    inertia = [float(nearest_code(x, kmeans(x, 16, iters=10, seed=1, backend=b), return_distance=True)[1].mean())
               for b in ("torch", "faiss")]
    # later steps may part where float32 rounding breaks a near-tie the other way: the quality stays the same
    assert inertia[1] == pytest.approx(inertia[0], rel=1e-3)
