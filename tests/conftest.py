"""Shared fixtures. The process set-up (pinned numerics, results outside the tree) is the early plugin
``vqstudy.testing``, named in pyproject's pytest addopts: it must run before other plugins import numpy."""
import pytest
import torch

from vqstudy import RunConfig


@pytest.fixture
def tiny_config() -> RunConfig:
    """A run small enough for unit tests (about a second)."""
    return RunConfig().replace(data={"n_per_cluster": 100}, quantizer={"codebook_size": 16},
                               train={"steps": 40, "eval_every": 20, "batch_size": 64})


@pytest.fixture(autouse=True)
def _fixed_threads():
    torch.set_num_threads(1)
    yield
