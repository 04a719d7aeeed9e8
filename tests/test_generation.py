"""The generation tools of chapter 6: Fréchet distance, the causal prior, the judging classifier."""
import numpy as np
import pytest
import torch
from scipy import linalg

from vqstudy import load_digits, train_test_split
from vqstudy.generation import (TokenPrior, accuracy, class_coverage, fit_prior, frechet_distance,
                                frechet_distance_from_stats, mean_pairwise_distance, train_classifier)
from vqstudy.repro import make_deterministic


def test_frechet_closed_form_diagonal():
    # N(m1, diag(a)) vs N(m2, diag(b)): |m1 - m2|^2 + sum (sqrt a - sqrt b)^2
    m1, m2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = ((m1 - m2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance_from_stats(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_frechet_matches_scipy_sqrtm_for_non_commuting_covariances():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T + 0.1 * np.eye(5), b @ b.T
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-8)


def test_frechet_of_samples_identical_and_shifted():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(2000, 4))
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(f, f + 3.0) == pytest.approx(36.0, rel=1e-9)  # 4 dims x 3^2
    with pytest.raises(ValueError):
        frechet_distance(f, f[:, :3])


def test_mean_pairwise_distance_known_values():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).reshape(3, 1, 1, 2)
    # pairs: 1, 1, sqrt(2)
    assert mean_pairwise_distance(x) == pytest.approx((2 + np.sqrt(2)) / 3)
    assert mean_pairwise_distance(x * 5) == pytest.approx((2 + np.sqrt(2)) / 3)  # clipped to [0, 1]


def test_class_coverage():
    out = class_coverage(torch.tensor([0, 0, 1, 1]), 4)
    assert out["histogram"] == [2, 2, 0, 0]
    assert out["classes_covered"] == 2
    assert out["class_entropy"] == pytest.approx(np.log(2))


def test_prior_is_causal():
    torch.manual_seed(0)
    prior = TokenPrior(vocab_size=7, length=6, d_model=16, n_layers=2, n_heads=2).eval()
    a = torch.randint(7, (3, 6))
    for i in range(6):
        b = a.clone()
        b[:, i:] = torch.randint(7, (3, 6 - i))  # change position i and everything after it
        with torch.no_grad():
            la, lb = prior(a), prior(b)
        assert torch.equal(la[:, :i + 1], lb[:, :i + 1]), f"logits up to {i} depend on tokens >= {i}"
    with torch.no_grad():  # and changing an earlier token does change later logits
        c = a.clone()
        c[:, 0] = (c[:, 0] + 1) % 7
        assert not torch.equal(prior(a)[:, 1:], prior(c)[:, 1:])


def test_prior_fit_and_sample_are_deterministic_and_learn():
    make_deterministic(0, 1)
    # a toy language: token i+1 = token i + 1 (mod 5), random start
    start = torch.randint(5, (400, 1), generator=torch.Generator().manual_seed(0))
    tokens = (start + torch.arange(4)) % 5
    p1, losses1 = fit_prior(tokens, 5, steps=150, batch_size=64, seed=3, d_model=32, n_heads=2)
    p2, losses2 = fit_prior(tokens, 5, steps=150, batch_size=64, seed=3, d_model=32, n_heads=2)
    assert losses1 == losses2
    s1, s2 = p1.sample(50, seed=7), p2.sample(50, seed=7)
    assert torch.equal(s1, s2)
    assert not torch.equal(s1, p1.sample(50, seed=8))
    assert losses1[-1] < 0.5 * losses1[0]
    follows = ((s1[:, 1:] - s1[:, :-1]) % 5 == 1).double().mean().item()
    assert follows > 0.9, f"the prior did not learn the rule: {follows:.2f}"


def test_classifier_accuracy_on_digits_well_above_chance():
    make_deterministic(0, 1)
    train, test = train_test_split(load_digits(), 0.2, seed=0)
    clf = train_classifier(train.x, train.labels, steps=300, seed=0)
    acc = accuracy(clf, test.x, test.labels)
    assert acc > 0.85, f"held-out accuracy {acc:.3f} (chance 0.1)"
    clf2 = train_classifier(train.x, train.labels, steps=300, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(clf.parameters(), clf2.parameters()))


def test_run_pipelines_gives_identical_results_inline_and_in_the_pool():
    """Chapter 6's pipelines go through the sweeps' executors; where a job ran never changes its result."""
    from vqstudy import RunConfig
    from vqstudy.generation import run_pipelines

    base = RunConfig().replace(data={"name": "digits", "test_fraction": 0.2},
                               model={"kind": "conv", "depth": 0, "width": 8, "latent_dim": 4, "downsample": 1},
                               quantizer={"codebook_size": 16}, train={"steps": 20, "eval_every": 20})
    configs = [base.replace(train={"seed": s}).to_dict() for s in (0, 1)]
    kwargs = dict(n_samples=4, prior_steps=5, prior_batch=16, d_model=16, n_layers=1, n_heads=2)
    inline = run_pipelines(configs, workers=1, **kwargs)
    pooled = run_pipelines(configs, workers=2, **kwargs)
    assert [o["final"] for o in inline] == [o["final"] for o in pooled]
    for a, b in zip(inline, pooled):
        assert torch.equal(a["samples"], b["samples"]) and torch.equal(a["sample_tokens"], b["sample_tokens"])
        assert a["prior_nll_test"] == b["prior_nll_test"]
    assert not torch.equal(inline[0]["samples"], inline[1]["samples"])
    with pytest.raises(ValueError, match="invalid workers=0"):
        run_pipelines(configs, workers=0, **kwargs)
