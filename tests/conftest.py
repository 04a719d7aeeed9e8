"""Every test process computes under the pinned numerics, and writes chapter results outside the tree.

Both are set before anything imports torch or numpy: the notebook kernels that
nbval starts inherit this process's environment, so the chapters run pinned and
write their results files into a temporary folder, not over the committed ones.
"""
import atexit
import os
import shutil
import tempfile

os.environ.setdefault("VQSTUDY_REPRODUCIBLE", "1")
if not os.environ.get("VQSTUDY_RESULTS_DIR"):
    _results = tempfile.mkdtemp(prefix="vqstudy-test-results-")
    os.environ["VQSTUDY_RESULTS_DIR"] = _results
    atexit.register(shutil.rmtree, _results, ignore_errors=True)

import vqstudy  # noqa: E402  pins torch/numpy before their first import
import pytest  # noqa: E402
import torch  # noqa: E402

from vqstudy import RunConfig  # noqa: E402


@pytest.fixture
def tiny_config() -> RunConfig:
    """A run small enough for unit tests (about a second)."""
    return RunConfig().replace(data={"n_per_cluster": 100}, quantizer={"codebook_size": 16},
                               train={"steps": 40, "eval_every": 20, "batch_size": 64})


@pytest.fixture(autouse=True)
def _fixed_threads():
    torch.set_num_threads(1)
    yield
