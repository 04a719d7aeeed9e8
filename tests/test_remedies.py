"""Each collapse remedy of the quantizer does what its paper (or vector-quantize-pytorch) defines.

Every test also shows the plain quantizer failing the same check where it could,
so a remedy that silently did nothing would fail.
"""
import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vqstudy import QuantizerConfig, RunConfig, VectorQuantizer, train
from vqstudy.quantize import rotate_to
from vqstudy.train import plain_counterpart, step_cost_ratio


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _one_step(vq: VectorQuantizer, z: torch.Tensor) -> torch.Tensor:
    """One SGD step on the quantizer's loss; returns the codes (as decoded) before the step."""
    before = vq.codes().detach().clone()
    vq.train()
    vq(z).loss.backward()
    torch.optim.SGD([p for p in vq.parameters() if p.requires_grad], lr=0.5).step()
    return before


def _moved(vq: VectorQuantizer, before: torch.Tensor) -> torch.Tensor:
    return (vq.codes().detach() - before).norm(dim=1) > 0


def test_affine_scale_and_shift_learn_and_move_every_code():
    codes = torch.randn(16, 4, generator=_gen(0))
    z = torch.randn(64, 4, generator=_gen(1)) + 3.0  # far from most codes: only a few are chosen
    vq = VectorQuantizer(16, 4, reparam="affine")
    vq.set_codebook(codes)
    with torch.no_grad():
        vq.affine_scale.fill_(2.0), vq.affine_shift.fill_(-1.0)
    assert torch.allclose(vq.codes(), codes * 2.0 - 1.0)  # codes = scale * raw + shift
    vq.set_codebook(codes)  # and set_codebook resets the map to the identity
    assert torch.equal(vq.codes().detach(), codes)
    used = vq.assign(z).unique()
    before = _one_step(vq, z)
    assert (vq.affine_scale.grad.abs() > 0).all() and (vq.affine_shift.grad.abs() > 0).all()
    assert _moved(vq, before).all()  # every code moves, chosen or not
    plain = VectorQuantizer(16, 4)
    plain.set_codebook(codes)
    before = _one_step(plain, z)
    assert _moved(plain, before).sum() == len(used) < 16  # the plain codebook loss moves only chosen codes


def test_affine_restart_puts_the_decoded_code_on_data():
    vq = VectorQuantizer(4, 2, restart_threshold=1, restart_every=1, reparam="affine")
    vq.set_codebook(torch.tensor([[0.0, 0.0], [100.0, 100.0], [200.0, 200.0], [300.0, 300.0]]))
    with torch.no_grad():
        vq.affine_scale.fill_(2.0), vq.affine_shift.fill_(0.5)
    vq.train()
    z = torch.randn(16, 2, generator=_gen(0))
    vq(z, _gen(0))
    assert vq.restarts == 3
    assert all(any(torch.allclose(m, row, atol=1e-6) for row in z) for m in vq.codes().detach()[1:])


def _lstsq_residual(before: torch.Tensor, after: torch.Tensor) -> float:
    """How far the best single linear map carrying the old codes to the new ones misses."""
    m = torch.linalg.lstsq(before.double(), after.double()).solution
    return float((before.double() @ m - after.double()).abs().max())


def test_simvq_codebook_moves_as_a_whole_under_its_linear_map():
    k, d = 32, 4
    base = torch.randn(k, d, generator=_gen(0))
    z = torch.randn(64, d, generator=_gen(1)) + 2.0
    vq = VectorQuantizer(k, d, reparam="linear")
    vq.set_codebook(base)
    assert not vq.codebook.requires_grad and vq.linear_map.requires_grad
    before = _one_step(vq, z)
    assert torch.equal(vq.codebook.detach(), base)  # the base codebook C stays frozen
    assert torch.allclose(vq.codes(), base @ vq.linear_map)  # codes = C W
    assert _moved(vq, before).all()
    assert _lstsq_residual(before, vq.codes().detach()) < 1e-5  # one map W moved all K > d codes
    assert not torch.allclose(vq.linear_map.detach(), torch.eye(d))
    plain = VectorQuantizer(k, d)
    plain.set_codebook(base)
    before = _one_step(plain, z)
    assert _lstsq_residual(before, plain.codes().detach()) > 1e-2  # the plain step is no linear map


def test_cosine_search_is_scale_invariant_and_picks_the_largest_cosine():
    codes = torch.randn(16, 6, generator=_gen(0))
    z = torch.randn(300, 6, generator=_gen(1))
    vq = VectorQuantizer(16, 6, distance="cosine").eval()
    vq.set_codebook(codes)
    idx = vq.assign(z)
    assert torch.equal(idx, (F.normalize(z, dim=1) @ F.normalize(codes, dim=1).t()).argmax(1))
    assert torch.equal(vq.assign(7.5 * z), idx) and torch.equal(vq.assign(0.01 * z), idx)
    assert torch.allclose(vq(7.5 * z).quantized, F.normalize(codes, dim=1)[idx], atol=1e-6)
    # the losses compare unit vectors with unit codes, so they ignore the input's scale too
    expected = 1.25 * F.mse_loss(F.normalize(z, dim=1), F.normalize(codes, dim=1)[idx])
    assert torch.allclose(vq(7.5 * z).loss, expected) and torch.allclose(vq(0.01 * z).loss, expected)
    plain = VectorQuantizer(16, 6)
    plain.set_codebook(codes)
    assert not torch.equal(plain.assign(7.5 * z), plain.assign(0.01 * z))


def test_low_dimensional_lookup_projects_searches_and_projects_back():
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 8, distance="cosine", lookup_dim=2)
    assert vq.codebook.shape == (16, 2) and vq.code_dim == 2
    vq.set_codebook(torch.randn(16, 2, generator=_gen(0)))
    z = torch.randn(100, 8, generator=_gen(1), requires_grad=True)
    out = vq.train()(z)
    looked_up = F.normalize(vq.project_in(z.detach()), dim=1)
    unit_codes = F.normalize(vq.codebook.detach(), dim=1)
    assert torch.equal(out.indices, (looked_up @ unit_codes.t()).argmax(1))
    assert torch.allclose(out.quantized, vq.project_out(unit_codes[out.indices]), atol=1e-6)
    assert torch.allclose(vq.codes()[out.indices], out.quantized, atol=1e-6)
    (out.quantized.sum() + out.loss).backward()
    for p in (vq.project_in.weight, vq.project_out.weight, vq.codebook, z):
        assert p.grad is not None and p.grad.abs().sum() > 0
    # the loss lives in the lookup space: unit vectors against unit codes
    expected = 1.25 * F.mse_loss(looked_up, unit_codes[out.indices])
    assert torch.allclose(out.loss, expected, atol=1e-6)


def test_rotation_trick_matches_vector_quantize_pytorch_and_is_not_straight_through():
    from vector_quantize_pytorch.vector_quantize_pytorch import rotate_to as library_rotate_to

    vq = VectorQuantizer(16, 5, gradient="rotation")
    vq.set_codebook(torch.randn(16, 5, generator=_gen(0)))
    z = torch.randn(50, 5, generator=_gen(1), requires_grad=True)
    g = torch.randn(50, 5, generator=_gen(2))
    out = vq.train()(z)
    (out.quantized * g).sum().backward()
    q = vq.codebook.detach()[out.indices]
    assert torch.allclose(out.quantized, q, atol=1e-5)  # forward value: the code itself
    z_lib = z.detach().clone().requires_grad_(True)
    (library_rotate_to(z_lib, q) * g).sum().backward()
    assert torch.allclose(z.grad, z_lib.grad, atol=1e-5)
    # a rotation and a rescale by ||q|| / ||z||: gradient norms scale, directions turn
    ratio = q.norm(dim=1) / z.detach().norm(dim=1)
    assert torch.allclose(z.grad.norm(dim=1), g.norm(dim=1) * ratio, rtol=1e-4)
    assert not torch.allclose(z.grad, g, atol=1e-2)  # straight-through would pass g unchanged
    plain = VectorQuantizer(16, 5)
    plain.set_codebook(vq.codebook.detach())
    z2 = z.detach().clone().requires_grad_(True)
    (plain.train()(z2).quantized * g).sum().backward()
    assert torch.allclose(z2.grad, g)


def test_rotate_to_matches_the_library_on_batched_input():
    from vector_quantize_pytorch.vector_quantize_pytorch import rotate_to as library_rotate_to

    src = torch.randn(3, 7, 6, generator=_gen(3), requires_grad=True)
    tgt = torch.randn(3, 7, 6, generator=_gen(4))
    src_lib = src.detach().clone().requires_grad_(True)
    ours, theirs = rotate_to(src, tgt), library_rotate_to(src_lib, tgt)
    assert torch.allclose(ours, theirs, atol=1e-6) and torch.allclose(ours, tgt, atol=1e-5)
    ours.pow(2).sum().backward(), theirs.pow(2).sum().backward()
    assert torch.allclose(src.grad, src_lib.grad, atol=1e-5)


@pytest.mark.parametrize("levels, dim", [((8, 5, 5, 5), 6), ((7, 5, 4), 3)])
def test_fsq_matches_vector_quantize_pytorch(levels, dim):
    from vector_quantize_pytorch import FSQ

    torch.manual_seed(0)
    library = FSQ(levels=list(levels), dim=dim)
    ours = VectorQuantizer(math.prod(levels), dim, kind="fsq", fsq_levels=levels)
    assert (ours.project_in is None) == (dim == len(levels))
    if ours.project_in is not None:
        ours.project_in.load_state_dict(library.project_in.state_dict())
        ours.project_out.load_state_dict(library.project_out.state_dict())
    z = 2.0 * torch.randn(4, 300, dim, generator=_gen(5))
    expected, expected_idx = library(z)
    out = ours.train()(z)
    assert torch.equal(out.indices, expected_idx.long())
    assert torch.allclose(out.quantized, expected, atol=1e-6)
    assert out.loss.item() == 0.0  # FSQ has no auxiliary loss
    with torch.no_grad():
        assert torch.allclose(ours.codes(), library.project_out(library.implicit_codebook), atol=1e-6)
        assert torch.allclose(ours.codes()[out.indices], out.quantized, atol=1e-6)


def test_fsq_uses_every_level_and_every_code_on_a_spread_input():
    levels = (7, 5, 4)
    vq = VectorQuantizer(140, 3, kind="fsq", fsq_levels=levels)
    z = (torch.rand(100_000, 3, generator=_gen(6)) * 2 - 1) * 4
    idx = vq.assign(z)
    assert len(idx.unique()) == 140
    grid = vq.codes()[idx]
    assert [len(grid[:, j].unique()) for j in range(3)] == list(levels)
    assert len(vq.assign(torch.full((100, 3), 0.3)).unique()) == 1  # a point mass uses one code
    z.requires_grad_(True)
    vq.train()(z[:10]).quantized.sum().backward()  # straight-through the rounding, through the bound
    assert z.grad is not None and (z.grad[:10] > 0).all()


def test_fsq_has_no_codebook_to_set_or_restart():
    vq = VectorQuantizer(64, 3, kind="fsq", fsq_levels=(4, 4, 4))
    with pytest.raises(ValueError, match="no codebook"):
        vq.set_codebook(torch.zeros(64, 3))
    with pytest.raises(ValueError, match="codebook_size"):
        VectorQuantizer(63, 3, kind="fsq", fsq_levels=(4, 4, 4))
    with pytest.raises(ValueError, match="update"):
        VectorQuantizer(64, 3, update="ema", kind="fsq", fsq_levels=(4, 4, 4))


@pytest.mark.parametrize("bad, words", [
    (dict(reparam="linear", update="ema"), ["update='ema'", "reparam='linear'"]),
    (dict(reparam="affine", update="ema"), ["update='ema'"]),
    (dict(reparam="linear", restart_threshold=1.0), ["restart_threshold", "frozen"]),
    (dict(distance="dot"), ["distance='dot'", "'cosine'"]),
    (dict(gradient="gumbel"), ["gradient='gumbel'", "'rotation'"]),
    (dict(lookup_dim=0), ["lookup_dim=0"]),
    (dict(fsq_levels=(4, 4)), ["fsq_levels", "kind='vq'"]),
])
def test_quantizer_refuses_nonsensical_options(bad, words):
    with pytest.raises(ValueError) as err:
        VectorQuantizer(16, 4, **bad)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_quantizer_is_built_from_every_config_field():
    """One place: every non-init field of QuantizerConfig is a keyword of VectorQuantizer and reaches it."""
    params = inspect.signature(VectorQuantizer).parameters
    cfg = QuantizerConfig(codebook_size=64, beta=0.5, kind="fsq", fsq_levels=[4, 4, 4], chunk_size=128)
    assert set(cfg.module_kwargs()) <= set(params)
    vq = VectorQuantizer.from_config(cfg, 5)
    for name, value in cfg.module_kwargs().items():
        assert getattr(vq, name) == value, name
    vq = VectorQuantizer.from_config(QuantizerConfig(reparam="affine", distance="cosine", lookup_dim=3,
                                                     gradient="rotation", restart_threshold=1.0), 7)
    assert (vq.reparam, vq.distance, vq.lookup_dim, vq.gradient, vq.restart_threshold) == \
        ("affine", "cosine", 3, "rotation", 1.0)


REMEDIES = {
    "affine": {"reparam": "affine"},
    "affine+restart": {"reparam": "affine", "restart_threshold": 1.0, "restart_every": 10},
    "simvq": {"reparam": "linear"},
    "cosine": {"distance": "cosine"},
    "cosine+lookup+ema": {"distance": "cosine", "lookup_dim": 3, "update": "ema"},
    "lookup+restart": {"lookup_dim": 3, "restart_threshold": 1.0, "restart_every": 10},
    "rotation": {"gradient": "rotation"},
    "fsq": {"kind": "fsq", "fsq_levels": [4, 4], "codebook_size": 16},
}


@pytest.mark.parametrize("name", REMEDIES)
def test_every_remedy_trains_and_is_diagnosed(tiny_config, name):
    r = train(tiny_config.replace(quantizer=REMEDIES[name]))
    assert r.status == "ok", r.reason
    final = r.final
    assert math.isfinite(final["recon_error"]) and 0 < final["utilization"] <= 1
    assert final["codebook_size"] == 16 and 1 <= final["perplexity"] <= 16
    assert r.model.quantizer.codes().shape == (16, tiny_config.model.latent_dim)
    assert RunConfig.from_json(r.config.to_json()) == r.config


def test_deferred_fsq_warms_up_without_reinit(tiny_config):
    cfg = tiny_config.replace(quantizer=REMEDIES["fsq"],
                              train={"schedule": "deferred", "warmup_steps": 20, "reinit_at_switch": False})
    r = train(cfg)
    assert r.status == "ok" and r.history["phase"] == ["ae"] * 20 + ["vq"] * 20


def test_deferred_lookup_reinitializes_in_the_lookup_space(tiny_config):
    cfg = tiny_config.replace(quantizer={"lookup_dim": 3}, train={"schedule": "deferred", "warmup_steps": 20})
    r = train(cfg)
    assert r.status == "ok" and r.model.quantizer.codebook.shape == (16, 3)


def test_plain_counterpart_switches_only_the_remedies_off():
    cfg = RunConfig().replace(quantizer={"kind": "fsq", "fsq_levels": [4, 4, 4], "init": "normal"},
                              train={"seed": 3})
    plain = plain_counterpart(cfg)
    assert plain.quantizer == QuantizerConfig(codebook_size=64, init="normal") and plain.train == cfg.train


def test_step_cost_ratio_compares_with_the_plain_quantizer(tiny_config):
    cost = step_cost_ratio(tiny_config.replace(quantizer={"reparam": "affine"}), blocks=2, steps_per_block=2)
    assert cost["ratio_low"] <= cost["ratio"] <= cost["ratio_high"] and cost["ratio"] > 0
    assert cost["wall_ratio_low"] <= cost["wall_ratio"] <= cost["wall_ratio_high"]
    assert cost["remedy_s_per_step"] > 0 and cost["plain_s_per_step"] > 0
    with pytest.raises(ValueError, match="blocks"):
        step_cost_ratio(tiny_config, blocks=0)


TRAINED_REMEDIES = {  # each remedy as the chapters configure it, and what it must have changed in training
    "ema": ({"update": "ema"}, lambda vq: not vq.codebook.requires_grad),
    "restart": ({"restart_threshold": 1.0, "restart_every": 5}, lambda vq: vq.restarts > 0),
    "affine": ({"reparam": "affine"}, lambda vq: not torch.equal(vq.affine_scale, torch.ones(vq.code_dim))
               and bool(vq.affine_shift.abs().sum() > 0)),
    "simvq": ({"reparam": "linear"}, lambda vq: not torch.allclose(vq.linear_map, torch.eye(vq.code_dim))),
    "cosine+lookup": ({"distance": "cosine", "lookup_dim": 3},
                      lambda vq: torch.allclose(vq.lookup_codebook().norm(dim=1), torch.ones(16))),
    "rotation": ({"gradient": "rotation"}, lambda vq: vq.gradient == "rotation"),
    "fsq": ({"kind": "fsq", "fsq_levels": [4, 4], "codebook_size": 16}, lambda vq: vq.kind == "fsq"),
}


@pytest.mark.parametrize("name", TRAINED_REMEDIES)
def test_every_remedy_changes_the_trained_run(tiny_config, name):
    """Through train(): the remedy reaches the model and changes every step's loss from the plain run's."""
    option, reached = TRAINED_REMEDIES[name]
    remedy = train(tiny_config.replace(quantizer=option))
    plain = train(plain_counterpart(remedy.config))
    assert reached(remedy.model.quantizer)
    ours, theirs = np.array(remedy.history["loss"]), np.array(plain.history["loss"])
    assert ours.shape == theirs.shape and ours[-1] != theirs[-1]
    assert (ours != theirs).mean() > 0.5          # not one stray step: most steps differ (restart: after the first)
