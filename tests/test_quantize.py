import numpy as np
import pytest
import torch

from vqstudy.quantize import VectorQuantizer, initial_codebook, kmeans, nearest_code


def _brute_force(x, c):
    return torch.cdist(x.double(), c.double()).argmin(1)


def test_nearest_code_matches_brute_force_and_chunking():
    gen = torch.Generator().manual_seed(0)
    x, c = torch.randn(3000, 12, generator=gen), torch.randn(97, 12, generator=gen)
    idx = nearest_code(x, c, chunk_size=128)
    assert torch.equal(idx, _brute_force(x, c))
    assert torch.equal(idx, nearest_code(x, c, chunk_size=10**6))
    i2, d2 = nearest_code(x, c, chunk_size=7, return_distance=True)
    assert torch.equal(i2, idx)
    ref = (x - c[idx]).pow(2).sum(1)
    assert torch.allclose(d2, ref, rtol=1e-4, atol=1e-4)


def test_nearest_code_rejects_bad_input():
    with pytest.raises(ValueError, match="dimension mismatch"):
        nearest_code(torch.zeros(4, 3), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="chunk_size"):
        nearest_code(torch.zeros(4, 3), torch.zeros(5, 3), chunk_size=0)


def test_nearest_code_rejects_non_finite_rows_naming_the_argument():
    x, c = torch.randn(6, 3), torch.randn(4, 3)
    x[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"invalid x: 1 non-finite value\(s\) \(NaN or Inf\), first in row\(s\) \[2\]"):
        nearest_code(x, c)
    c[3, 0] = float("inf")
    with pytest.raises(ValueError, match=r"invalid codebook: .*row\(s\) \[3\]"):
        nearest_code(torch.randn(6, 3), c)
    with pytest.raises(ValueError, match="x must be a floating-point tensor, got dtype torch.int64"):
        nearest_code(torch.zeros(6, 3, dtype=torch.long), torch.randn(4, 3))


def test_nearest_code_compares_mixed_dtypes_in_the_wider_one():
    gen = torch.Generator().manual_seed(0)
    x, c = torch.randn(300, 5, generator=gen, dtype=torch.float64), torch.randn(20, 5, generator=gen)
    idx, dist = nearest_code(x, c, return_distance=True)
    ref_idx, ref_dist = nearest_code(x, c.double(), return_distance=True)
    assert torch.equal(idx, ref_idx) and dist.dtype == torch.float64 and torch.equal(dist, ref_dist)
    assert torch.equal(nearest_code(x.float(), c.double()), nearest_code(x.double(), c.double()))


def test_straight_through_gradient_reaches_encoder():
    vq = VectorQuantizer(8, 4)
    vq.set_codebook(torch.randn(8, 4, generator=torch.Generator().manual_seed(1)))
    z = torch.randn(10, 4, requires_grad=True)
    out = vq(z)
    out.quantized.sum().backward()
    assert torch.allclose(z.grad, torch.ones_like(z))  # identity through the quantizer
    assert torch.allclose(out.quantized.detach(), vq.codebook.detach()[out.indices], atol=1e-6)
    # the codebook loss trains the codebook; the commitment term trains z
    z2 = torch.randn(10, 4, requires_grad=True)
    vq.codebook.grad = None
    vq(z2).loss.backward()
    assert vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0
    assert z2.grad.abs().sum() > 0


def test_disabled_quantizer_is_identity():
    vq = VectorQuantizer(8, 4)
    vq.enabled = False
    z = torch.randn(5, 4)
    out = vq(z)
    assert out.indices is None and torch.equal(out.quantized, z) and out.loss.item() == 0.0


def test_ema_update_matches_hand_computation():
    vq = VectorQuantizer(2, 1, update="ema", ema_decay=0.5, eps=0.0)
    vq.set_codebook(torch.tensor([[0.0], [10.0]]))
    vq.train()
    vq(torch.tensor([[1.0], [3.0], [9.0]]))
    # counts (2, 1); sums (4, 9); ema_count = 0.5*1 + 0.5*(2,1) = (1.5, 1.0)
    # ema_sum = 0.5*(0,10) + 0.5*(4,9) = (2, 9.5); codes = ema_sum / ema_count
    assert torch.allclose(vq.ema_count, torch.tensor([1.5, 1.0]))
    assert torch.allclose(vq.codebook.detach(), torch.tensor([[2.0 / 1.5], [9.5]]))
    assert not vq.codebook.requires_grad


def test_ema_quantizes_with_the_codebook_before_its_update():
    """Three codes, two vectors nearest code 0: the output is code 0 as it was when the indices were chosen."""
    vq = VectorQuantizer(3, 1, update="ema", ema_decay=0.5, eps=0.0)
    vq.set_codebook(torch.tensor([[0.0], [10.0], [20.0]]))
    vq.train()
    z = torch.tensor([[1.0], [2.0]])
    out = vq(z)
    assert out.indices.tolist() == [0, 0]
    assert torch.equal(out.quantized, torch.tensor([[0.0], [0.0]]))          # old code 0, not the moved one
    assert torch.allclose(out.loss, torch.tensor(0.25 * (1.0 + 4.0) / 2))    # commitment against the old code
    # and the codebook did move: code 0 is the EMA of its old value and the batch mean 1.5
    assert vq.codebook[0, 0].item() != 0.0
    assert torch.equal(vq.codebook[1:], torch.tensor([[10.0], [20.0]]))


def test_dead_code_restart_moves_unused_codes_to_data():
    vq = VectorQuantizer(4, 2, restart_threshold=1, restart_every=1)
    vq.set_codebook(torch.tensor([[0.0, 0.0], [100.0, 100.0], [200.0, 200.0], [300.0, 300.0]]))
    vq.train()
    z = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    vq(z, torch.Generator().manual_seed(0))
    assert vq.restarts == 3
    moved = vq.codebook.detach()[1:]
    assert all(any(torch.equal(m, row) for row in z) for m in moved)


def test_kmeans_is_deterministic_and_finds_clusters():
    gen = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(200, 2, generator=gen) for c in centers])
    a, b = kmeans(x, 3, iters=10, seed=5), kmeans(x, 3, iters=10, seed=5)
    assert torch.equal(a, b)
    found = sorted(map(tuple, a.round().tolist()))
    assert found == sorted(map(tuple, centers.tolist()))


def test_kmeans_handles_empty_clusters_and_duplicates():
    x = torch.zeros(50, 3)
    x[:2] = torch.tensor([[1.0, 0, 0], [2.0, 0, 0]])
    c = kmeans(x, 4, iters=5, seed=0)
    assert c.shape == (4, 3) and torch.isfinite(c).all()
    with pytest.raises(ValueError, match="at least k=10"):
        kmeans(torch.zeros(5, 2), 10)


def test_kmeans_matches_sklearn_inertia():
    from sklearn.cluster import KMeans
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(m, 1.0, size=(300, 4)) for m in (0, 6, 12, 18)]).astype(np.float32)
    ours = kmeans(torch.from_numpy(x), 4, iters=30, seed=0).numpy()
    ref = KMeans(4, n_init=10, random_state=0).fit(x)
    inertia = ((x[:, None] - ours[None]) ** 2).sum(-1).min(1).sum()
    assert inertia <= ref.inertia_ * 1.01


@pytest.mark.parametrize("kind, scale, bound", [("normal", 1e-3, 1e-2), ("uniform", None, 1.0 / 64)])
def test_random_inits_have_their_scale(kind, scale, bound):
    codes = initial_codebook(kind, 64, 16, torch.Generator().manual_seed(0), scale)
    assert codes.shape == (64, 16)
    assert codes.abs().max() <= bound
    assert codes.std() > 0


def test_data_init_samples_given_vectors():
    v = torch.arange(40.0).reshape(20, 2)
    codes = initial_codebook("data", 5, 2, torch.Generator().manual_seed(0), vectors=v)
    assert all(any(torch.equal(c, row) for row in v) for c in codes)
    assert len({tuple(c.tolist()) for c in codes}) == 5
    with pytest.raises(ValueError, match="needs vectors"):
        initial_codebook("kmeans", 5, 2, torch.Generator())
    with pytest.raises(ValueError, match="allowed values"):
        initial_codebook("zeros", 5, 2, torch.Generator())


def test_chunked_search_gives_the_bits_of_a_fresh_addmm_per_chunk():
    """_nearest writes every chunk into one reused buffer: the indices and distances of the plain expression."""
    from vqstudy.quantize import _nearest

    gen = torch.Generator().manual_seed(5)
    # the last cases are cut into cache-sized blocks (K = 4,096: 512 rows), with short tails to join
    for n, d, k, chunk in ((1000, 3, 7, 64), (777, 33, 129, 100), (300, 16, 40, 10 ** 6), (8197, 16, 4096, 8192),
                           (1541, 8, 4096, 1030), (530, 5, 8192, 10 ** 6)):
        x, c = torch.randn(n, d, generator=gen), torch.randn(k, d, generator=gen)
        x[::7] = c[torch.randint(k, (len(x[::7]),), generator=gen)]   # exact ties on codes
        c[k // 2] = c[k // 3]                                           # duplicate codes: the lower index wins
        parts = [torch.addmm(c.pow(2).sum(1), x[s:s + chunk], c.t(), alpha=-2.0) for s in range(0, n, chunk)]
        best, arg = torch.cat(parts).min(1)
        assert torch.equal(_nearest(x, c, chunk), torch.cat([p.argmin(1) for p in parts]))
        idx, dist = _nearest(x, c, chunk, return_distance=True)
        assert torch.equal(idx, arg) and torch.equal(dist, (best + x.pow(2).sum(1)).clamp_min_(0.0))


def test_blocks_cover_every_row_once_and_keep_each_chunks_tail_in_a_long_block():
    from vqstudy.quantize import BLOCK_ROWS_MULTIPLE, _block_rows, _blocks

    assert _block_rows(1024, 4, 8192) == 2048 and _block_rows(64, 4, 8192) == 8192
    assert _block_rows(10 ** 6, 4, 8192) == BLOCK_ROWS_MULTIPLE and _block_rows(64, 8, 100) == 100
    assert _blocks(0, 10, 32) == []
    for n, chunk, block in ((8197, 8192, 512), (1541, 1030, 512), (5, 8192, 64), (100, 7, 32)):
        spans = _blocks(n, chunk, block)
        assert [a for a, _ in spans] == [0] + [b for _, b in spans[:-1]] and (spans[-1][1] if spans else 0) == n
        for a, b in spans:   # a block never crosses a chunk boundary and is short only as a whole chunk
            assert a // chunk == (b - 1) // chunk
            assert b - a >= BLOCK_ROWS_MULTIPLE or (a % chunk == 0 and (b == n or b % chunk == 0))


@pytest.mark.parametrize("k", [256, 300, 1024, 4099])
def test_first_argmin_by_groups_equals_argmin_with_ties_and_nans(monkeypatch, k):
    """The grouped path runs only with the pinned numerics off (the tests pin them): forced here."""
    from vqstudy import quantize

    monkeypatch.setattr(quantize.numerics, "active", lambda: False)
    gen = torch.Generator().manual_seed(k)
    d = torch.randint(0, 50, (64, k), generator=gen).float()   # many equal minima within and across groups
    d[3, k - 1] = -1.0                                           # the minimum in the tail columns
    d[4, k - 1] = float("nan")                                   # a NaN: argmin returns it
    d[5, 40] = float("nan")
    d[5, k - 2] = float("nan")
    d[6] = 7.0                                                   # a constant row: index 0
    assert torch.equal(quantize.first_argmin(d), d.argmin(1))


def test_check_finite_passes_huge_finite_values_and_catches_cancelling_infinities():
    """The one-sum shortcut: an overflowing sum of finite values is not an error; +Inf and -Inf, whose sum
    is NaN, and a lone NaN are."""
    from vqstudy.quantize import check_finite

    check_finite("big", torch.full((10, 3), 3e38), "why")
    for bad in ([float("inf"), -float("inf")], [float("nan"), 0.0], [-float("inf"), 1.0]):
        x = torch.zeros(50, 2)
        x[[3, 9], [0, 1]] = torch.tensor(bad)
        with pytest.raises(ValueError, match=r"invalid x: .*first in row\(s\) \[3"):
            check_finite("x", x, "why")
