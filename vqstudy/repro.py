"""Determinism and provenance: how a run is made repeatable and how it records its origin."""
from __future__ import annotations

import os
import platform
import random
import subprocess
from pathlib import Path

import numpy as np

# cuBLAS needs this before its first use for deterministic GEMMs on CUDA.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402

from ._version import __version__  # noqa: E402


def make_deterministic(seed: int, threads: int) -> torch.Generator:
    """Seed every RNG, fix the thread count and demand deterministic kernels.

    PyTorch on CPU is bitwise repeatable only with all three: the backward of
    index ops changes between runs without the flag, and results differ
    between thread counts. Returns a CPU generator for the run's own sampling.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    return torch.Generator(device="cpu").manual_seed(seed)


def git_revision() -> str:
    """The source tree's commit (with '+dirty' for uncommitted changes), or 'unknown'."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> dict[str, str]:
    """Versions and machine facts recorded beside every result."""
    return {
        "vqstudy": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "git_revision": git_revision(),
    }
