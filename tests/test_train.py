import math

import pytest
import torch

from vqstudy import RunConfig, RunResult, train


def _strip(result_dict):
    return {k: v for k, v in result_dict.items() if k not in ("wall_time", "environment")}


def test_two_runs_are_bit_identical(tiny_config):
    a, b = train(tiny_config), train(tiny_config)
    assert a.history == b.history
    assert _strip(a.to_dict()) == _strip(b.to_dict())
    c = train(tiny_config.replace(train={"seed": 1}))
    assert c.history["loss"] != a.history["loss"]


def test_result_round_trips_and_records_provenance(tiny_config):
    r = train(tiny_config)
    again = RunResult.from_dict(r.to_dict())
    assert again.config == r.config and again.evals == r.evals
    assert set(r.environment) >= {"vqstudy", "torch", "git_revision", "python"}
    assert r.final["step"] == tiny_config.train.steps
    assert [e["step"] for e in r.evals] == [0, 20, 40]


def test_joint_never_runs_unquantized(tiny_config):
    r = train(tiny_config)
    assert set(r.history["phase"]) == {"vq"}
    assert all(e["quantized"] for e in r.evals)


def _spy_inits(monkeypatch):
    """Record (kind, vectors, codes) of every codebook initialization."""
    import inspect

    import importlib

    train_module = importlib.import_module("vqstudy.train")
    real = train_module.initial_codebook
    signature = inspect.signature(real)
    seen = []

    def spy(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        codes = real(*args, **kwargs)
        seen.append((bound.arguments["kind"], bound.arguments.get("vectors"), codes))
        return codes

    monkeypatch.setattr(train_module, "initial_codebook", spy)
    return seen


def test_deferred_warms_up_then_reinitializes_from_trained_encoder(tiny_config, monkeypatch):
    seen = _spy_inits(monkeypatch)
    joint = train(tiny_config)
    untrained_vectors = seen[0][1]
    cfg = tiny_config.replace(train={"schedule": "deferred", "warmup_steps": 25})
    r = train(cfg)
    assert r.history["phase"] == ["ae"] * 25 + ["vq"] * 15
    assert all(v == 0.0 for v in r.history["vq"][:25])
    # exactly one init for the deferred run: k-means, at the switch
    assert [kind for kind, _, _ in seen[1:]] == ["kmeans"]
    _, vectors, codes = seen[1]
    # same initial weights (same seed), so the untrained encoder gave untrained_vectors;
    # the switch must see the encoder after 25 steps of autoencoder training instead
    assert vectors.shape == untrained_vectors.shape
    assert not torch.allclose(vectors, untrained_vectors)
    switch = [e for e in r.evals if e["step"] == 25 and e["quantized"]]
    assert len(switch) == 1
    # the evaluation right after the switch sees exactly those vectors and that codebook
    inertia = torch.cdist(vectors.double(), codes.double()).min(1).values.pow(2).mean().item()
    assert switch[0]["quantization_error"] == pytest.approx(inertia, rel=1e-4)
    assert not r.evals[1]["quantized"] and r.evals[1]["recon_error"] < r.evals[0]["recon_error"]  # AE learned
    assert joint.history["phase"][0] == "vq"


def test_deferred_keep_old_codebook(tiny_config, monkeypatch):
    seen = _spy_inits(monkeypatch)
    cfg = tiny_config.replace(train={"schedule": "deferred", "warmup_steps": 20, "reinit_at_switch": False},
                              quantizer={"init": "normal", "init_scale": 0.5})
    r = train(cfg)
    assert r.status == "ok" and r.history["phase"].count("ae") == 20
    assert [kind for kind, _, _ in seen] == ["normal"]


def test_nan_guard_stops_and_records_reason(tiny_config):
    cfg = tiny_config.replace(train={"lr": 1e30}, quantizer={"init": "normal", "init_scale": 1e20})
    r = train(cfg)
    assert r.status == "diverged"
    assert "non-finite" in r.reason
    assert len(r.history["step"]) < cfg.train.steps


def test_ema_and_restart_variants_run(tiny_config):
    for q in ({"update": "ema"}, {"restart_threshold": 1.0, "restart_every": 10}):
        r = train(tiny_config.replace(quantizer=q))
        assert r.status == "ok" and math.isfinite(r.final["recon_error"])


def test_conv_model_on_digits():
    cfg = RunConfig().replace(data={"name": "digits"},
                              model={"kind": "conv", "depth": 1, "width": 16, "latent_dim": 8},
                              quantizer={"codebook_size": 32}, train={"steps": 10, "eval_every": 10})
    r = train(cfg)
    assert r.status == "ok"
    assert r.final["n_vectors"] == 1797 * 16  # 8x8 -> 4x4 grid of codes


def test_cuda_request_without_gpu_is_a_clear_error(tiny_config):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="train.device='cuda'"):
        train(tiny_config.replace(train={"device": "cuda"}))


def test_phenomenon_small_init_uses_fewer_codes_than_deferred():
    """C1 smoke: a tiny random init trained jointly uses clearly fewer codes than deferred quantization."""
    base = RunConfig().replace(train={"steps": 800, "eval_every": 800})
    for seed in (0, 1, 2):
        joint = train(base.replace(quantizer={"init": "normal", "init_scale": 1e-3}, train={"seed": seed})).final
        deferred = train(base.replace(train={"seed": seed, "schedule": "deferred", "warmup_steps": 400})).final
        assert joint["utilization"] < 0.5 * deferred["utilization"], (seed, joint["utilization"], deferred["utilization"])
        assert joint["perplexity"] < 0.5 * deferred["perplexity"], (seed, joint["perplexity"], deferred["perplexity"])


def test_held_out_evaluation(tiny_config):
    from vqstudy import gaussian_mixture
    from vqstudy.data import train_test_split

    tr, te = train_test_split(gaussian_mixture(n_per_cluster=100), 0.25, seed=0)
    r = train(tiny_config, dataset=tr, eval_dataset=te)
    assert r.final["n_vectors"] == len(te)
    with pytest.raises(ValueError, match="eval_dataset"):
        train(tiny_config, dataset=tr, eval_dataset=gaussian_mixture(n_per_cluster=10, dim=3))


def test_config_driven_split(tiny_config):
    r = train(tiny_config.replace(data={"test_fraction": 0.2}))
    assert r.final["n_vectors"] == 200 and len(r.dataset) == 800


def test_overflowing_init_is_recorded_as_diverged(tiny_config):
    r = train(tiny_config.replace(quantizer={"init": "normal", "init_scale": 1e38}))
    assert r.status == "diverged" and "initialization" in r.reason and r.history["step"] == []


def test_untrained_model_is_the_step_0_model_and_leaves_the_random_state(tiny_config):
    from vqstudy.data import load_dataset
    from vqstudy.diagnostics import covariance_eigenvalues
    from vqstudy.train import untrained_model

    config = tiny_config.replace(train={"seed": 3})
    ds = load_dataset(config.data)
    before = torch.random.get_rng_state()
    model = untrained_model(config, ds)
    assert torch.equal(torch.random.get_rng_state(), before)
    run = train(config)
    assert float(covariance_eigenvalues(model.encode(ds.x)).sum()) == pytest.approx(
        run.evals[0]["embed_total_variance"], rel=1e-6)
    other = untrained_model(config.replace(train={"seed": 4}), ds)
    assert not torch.equal(other.encode(ds.x), model.encode(ds.x))
    with pytest.raises(TypeError, match="RunConfig"):
        untrained_model(config.to_dict(), ds)
