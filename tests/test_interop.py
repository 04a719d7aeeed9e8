"""vqstudy.interop on a real vector-quantize-pytorch VectorQuantize, and the how-to's code."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("vector_quantize_pytorch")
from vector_quantize_pytorch import VectorQuantize  # noqa: E402

from vqstudy.interop import CollapseTracker, codebook_and_indices, diagnose_vector_quantize  # noqa: E402
from vqstudy.quantize import nearest_code  # noqa: E402

HOWTO = Path(__file__).resolve().parents[1] / "book" / "diagnose-your-tokenizer.md"


def trained_vq(**kwargs) -> VectorQuantize:
    """A small VectorQuantize after a few EMA steps, so its codebook and buffers are not at their init."""
    torch.manual_seed(0)
    vq = VectorQuantize(dim=8, codebook_size=32, decay=0.99, rotation_trick=False, **kwargs)
    for _ in range(3):
        vq(torch.randn(2, 64, 8))
    return vq


def state(vq: VectorQuantize) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in vq.state_dict().items()}


def assert_same_state(before: dict[str, torch.Tensor], vq: VectorQuantize) -> None:
    after = vq.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key


@pytest.fixture
def embeddings() -> torch.Tensor:
    return torch.randn(4, 128, 8, generator=torch.Generator().manual_seed(1))


def test_indices_match_nearest_code(embeddings):
    z, idx, codebook = codebook_and_indices(trained_vq(), embeddings)
    assert z.shape == (512, 8) and idx.shape == (512,) and codebook.shape == (32, 8)
    assert (idx == nearest_code(z, codebook)).float().mean() >= 0.999


def test_usage_metrics_match_numpy(embeddings):
    vq = trained_vq()
    report = diagnose_vector_quantize(vq, embeddings)
    _, idx, _ = codebook_and_indices(vq, embeddings)
    counts = np.bincount(idx.numpy(), minlength=32)
    p = counts[counts > 0] / counts.sum()
    assert report["utilization"] == pytest.approx((counts > 0).mean())
    assert report["perplexity"] == pytest.approx(np.exp(-(p * np.log(p)).sum()))


def test_does_not_mutate_module(embeddings):
    vq = trained_vq()
    before = state(vq)
    diagnose_vector_quantize(vq, embeddings.reshape(-1, 8))  # (N, D) input too
    assert_same_state(before, vq)
    assert vq.training  # mode restored


def test_uninitialized_kmeans_codebook_is_refused(embeddings):
    vq = VectorQuantize(dim=8, codebook_size=32, kmeans_init=True, rotation_trick=False)
    before = state(vq)
    with pytest.raises(ValueError, match="not initialized"):
        codebook_and_indices(vq, embeddings)
    assert_same_state(before, vq)


def test_projected_codebook_space(embeddings):
    vq = trained_vq(codebook_dim=4)
    report = diagnose_vector_quantize(vq, embeddings)
    z, idx, codebook = codebook_and_indices(vq, embeddings)
    assert z.shape == (512, 4) and codebook.shape == (32, 4)
    assert torch.allclose(z, vq.project_in(embeddings).reshape(-1, 4))
    assert report["embed_effective_dim"] <= 4


def test_tracker_one_row_per_due_update(embeddings):
    vq = trained_vq()
    labels = torch.arange(512) % 4
    tracker = CollapseTracker(every=2, eval_embeddings=embeddings, labels=labels)
    for step in range(5):
        tracker.update_from_vector_quantize(step, vq)
    z, idx, codebook = codebook_and_indices(vq, embeddings)
    assert tracker.update(6, z, idx, codebook) is not None
    assert tracker.update(7, z, idx, codebook) is None
    frame = tracker.frame()
    assert frame["step"].tolist() == [0, 2, 4, 6]
    assert {"utilization", "perplexity", "embed_effective_dim", "mode_entropy", "coverage"} <= set(frame.columns)


def test_howto_code_block_runs():
    """The how-to's example is executed from the markdown itself, so the page cannot rot."""
    blocks = re.findall(r"```python\n(.*?)```", HOWTO.read_text(), flags=re.S)
    assert len(blocks) == 1
    namespace: dict = {}
    exec(compile(blocks[0], str(HOWTO), "exec"), namespace)
    assert len(namespace["tracker"].frame()) == 3
    assert 0 < namespace["report"]["utilization"] <= 1


def test_training_with_the_library_is_deterministic_and_defers():
    from vqstudy import RunConfig
    from vqstudy.interop import train_with_vector_quantize

    cfg = RunConfig().replace(data={"n_per_cluster": 50}, quantizer={"codebook_size": 16},
                              train={"steps": 40, "batch_size": 64})
    a, final_a = train_with_vector_quantize(cfg, {"kmeans_init": True}, eval_every=10, warmup_steps=20)
    b, final_b = train_with_vector_quantize(cfg, {"kmeans_init": True}, eval_every=10, warmup_steps=20)
    assert a.equals(b) and final_a == final_b
    # nothing is diagnosed before the codebook is fitted at the switch; the last row is the final model
    assert a["step"].min() > 20 and a["step"].iloc[-1] == 40
    assert {"utilization", "perplexity", "recon_error", "embed_effective_dim"} <= set(a.columns)
    with pytest.raises(ValueError, match="warmup_steps"):
        train_with_vector_quantize(cfg, {}, eval_every=10, warmup_steps=40)


def test_set_codebook_survives_the_ema_update():
    from vqstudy.interop import set_codebook

    torch.manual_seed(0)
    small = torch.randn(32, 8) * 1e-3
    ours, setter = VectorQuantize(dim=8, codebook_size=32), VectorQuantize(dim=8, codebook_size=32)
    set_codebook(ours, small)
    setter.codebook = small                     # the library's setter: embed only
    x = torch.randn(1, 64, 8) * 3
    _, idx, _ = ours(x)
    setter(x)
    unused = torch.ones(32, dtype=torch.bool)
    unused[idx.flatten()] = False
    assert unused.any()
    # an unused code keeps the explicit init under EMA; with the setter alone it returns to kaiming (~0.1)
    assert ours.codebook[unused].abs().max() < 1e-2
    assert setter.codebook[unused].abs().max() > 1e-2
    with pytest.raises(ValueError, match="codes"):
        set_codebook(ours, torch.zeros(16, 8))


def test_training_with_an_explicit_small_init():
    from vqstudy import RunConfig
    from vqstudy.interop import train_many_with_vector_quantize, train_with_vector_quantize

    cfg = RunConfig().replace(data={"n_per_cluster": 50}, quantizer={"codebook_size": 16},
                              train={"steps": 30, "batch_size": 64})
    kept: dict = {}
    frame, final = train_with_vector_quantize(cfg, {}, 30, codebook_init=("normal", 1e-3), keep_modules=kept)
    default, _ = train_with_vector_quantize(cfg, {}, 30)
    assert frame.iloc[0]["codebook_euclidean_spread"] < 0.1 * default.iloc[0]["codebook_euclidean_spread"]
    inline = train_many_with_vector_quantize([(cfg, {}, 30, 0, ("normal", 1e-3))], workers=1)
    assert inline[0][1] == final
    with pytest.raises(ValueError, match="codebook_init"):
        train_with_vector_quantize(cfg, {"kmeans_init": True}, 30, codebook_init=("normal", 1e-3))
    with pytest.raises(ValueError, match="codebook_init"):
        train_with_vector_quantize(cfg, {}, 30, codebook_init=("kaiming", None))
