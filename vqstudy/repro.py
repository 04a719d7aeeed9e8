"""Determinism and provenance: how a run is made repeatable and how it records its origin."""
from __future__ import annotations

import os
import platform
import random
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

# cuBLAS needs this before its first use for deterministic GEMMs on CUDA.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402

from . import numerics  # noqa: E402
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


def adam(params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam (AdamW with ``weight_decay``), fused: one kernel whose arithmetic is the same on every CPU.

    The unfused update takes its square roots through MKL's vector math library, which returns
    different last bits on Intel and AMD CPUs even under MKL's reproducibility mode (measured:
    ``torch.sqrt`` of 10,000 floats differs between an AMD EPYC and an Intel Xeon); the fused
    kernel computes them in ATen's own loop.
    """
    params = list(params)
    if weight_decay:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    return torch.optim.Adam(params, lr=lr, fused=True)


# What a chapter run rewrites: its outputs do not make the code that produced them "dirty".
OUTPUT_PATHS = ("results", "book/_generated", "book/claims.md", "book/reproducibility.md", "book/verdicts.md",
                "_toc.yml")


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10,
                          check=True).stdout


def _notebook_sources(text: str) -> list[tuple[str, str]]:
    """A notebook's cell types and sources: what it runs, not what it printed."""
    import json

    cells = json.loads(text).get("cells", [])
    return [(c.get("cell_type", ""), "".join(c.get("source", ""))) for c in cells
            if c.get("metadata", {}).get("tags") != ["injected-parameters"]]


def _changed_code(root: Path) -> list[str]:
    """Tracked files whose changes alter what runs: everything except outputs and notebook outputs."""
    changed = []
    for line in _git(root, "status", "--porcelain", "--untracked-files=no").splitlines():
        path = line[3:].split(" -> ")[-1].strip('"')
        if path.startswith(OUTPUT_PATHS):
            continue
        if path.endswith(".ipynb"):
            try:
                if _notebook_sources((root / path).read_text(encoding="utf-8")) == \
                        _notebook_sources(_git(root, "show", f"HEAD:{path}")):
                    continue
            except (OSError, ValueError, subprocess.SubprocessError):
                pass
        changed.append(path)
    return changed


def git_revision() -> str:
    """The commit of the code that ran, with '+dirty' when that code has uncommitted changes.

    A chapter's own outputs (executed notebooks, results files, generated pages) do not count:
    the main job rewrites them one chapter after another, and the next chapter still runs the
    committed code.
    """
    root = Path(__file__).resolve().parent.parent
    try:
        rev = _git(root, "rev-parse", "HEAD").strip()
        return rev + ("+dirty" if _changed_code(root) else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> dict[str, Any]:
    """Versions, machine facts and numeric settings recorded beside every result."""
    return {
        "vqstudy": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "git_revision": git_revision(),
        **numerics.status(),
    }
