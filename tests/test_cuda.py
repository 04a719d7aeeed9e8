"""The CUDA path: the same code on a GPU trains, repeats itself bit for bit, and agrees with the CPU.

Skipped on machines without a CUDA device (CI has none); run on a GPU machine with
``pytest tests/test_cuda.py``. GPU numbers are not expected to equal CPU numbers
bit for bit (other kernels), only to agree to within float tolerance on a single step.
"""
import math

import pytest
import torch

from vqstudy import RunConfig, diagnose, nearest_code, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

CONFIGS = {
    "mlp": RunConfig().replace(train={"steps": 300, "eval_every": 150, "device": "cuda"}),
    "conv": RunConfig().replace(data={"name": "digits"}, model={"kind": "conv", "width": 16, "latent_dim": 8},
                                quantizer={"codebook_size": 32},
                                train={"steps": 100, "eval_every": 50, "batch_size": 64, "device": "cuda"}),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_cuda_training_is_finite_and_repeats_bit_for_bit(name):
    first, second = train(CONFIGS[name], progress=False), train(CONFIGS[name], progress=False)
    assert first.status == "ok"
    assert all(math.isfinite(v) for v in first.history["loss"])
    assert first.history == second.history
    assert first.final["utilization"] > 0


def test_cuda_nearest_code_matches_the_cpu():
    gen = torch.Generator().manual_seed(0)
    x, codes = torch.randn(50_000, 64, generator=gen), torch.randn(1024, 64, generator=gen)
    cpu = nearest_code(x, codes, chunk_size=4096)
    gpu = nearest_code(x.cuda(), codes.cuda(), chunk_size=4096).cpu()
    assert (cpu == gpu).float().mean() > 0.999   # float ties and rounding may flip a handful


def test_cuda_diagnose_matches_the_cpu():
    gen = torch.Generator().manual_seed(1)
    z, codes = torch.randn(5000, 8, generator=gen), torch.randn(64, 8, generator=gen)
    idx = nearest_code(z, codes)
    cpu = diagnose(z, idx, codes)
    gpu = diagnose(z.cuda(), idx.cuda(), codes.cuda())
    for key in ("utilization", "perplexity", "quantization_error"):
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-4), key
