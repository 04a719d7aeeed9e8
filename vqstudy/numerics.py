"""Reproducible numerics: the same bits from every x86-64 CPU, Intel or AMD (checked on AMD CPUs under
emulated instruction sets; an Intel CPU against an AMD one is not yet verified).

Training is chaotic: one rounding difference in an early step becomes a
different run. The numeric libraries under PyTorch and NumPy choose their
kernels from the CPU they find (AVX-512, AVX2, SSE), and different kernels sum
in different orders, so the same seed gives different stored numbers on
another machine. This mode pins every library the study uses to kernels that
every x86-64 CPU computes identically:

- ATen (PyTorch's own kernels): the portable ``default`` capability;
- MKL (PyTorch's BLAS): conditional numerical reproducibility, ``COMPATIBLE``
  branch — the one MKL documents as identical on Intel and non-Intel CPUs;
- oneDNN and NNPACK (PyTorch's convolutions): switched off, so convolutions run
  as im2col + MKL GEMM, pinned above (``ONEDNN_MAX_CPU_ISA`` caps the rest);
- OpenBLAS (NumPy's and SciPy's BLAS): one core type and one thread;
- NumPy's own SIMD dispatch: baseline only;
- library thread pools: one thread (PyTorch's intra-op count is set per run).

The environment variables must be set before torch or numpy is imported, so
:func:`pin` refuses (with a clear error) when it is too late. The mode is on
for the book's notebooks, the main job and the tests (``VQSTUDY_REPRODUCIBLE=1``
in the environment, or :func:`pin` before the first ``import torch``), and off
for benchmarks and for anyone using the package in their own training.
Pinning costs speed; the reproducibility page reports how much.

This module imports nothing from vqstudy and nothing heavy at import time.
"""
from __future__ import annotations

import os
import platform
import sys
import warnings
from typing import Any

ENV_FLAG = "VQSTUDY_REPRODUCIBLE"
FLAG_ON = ("1", "true", "on", "yes")
FLAG_OFF = ("", "0", "false", "off", "no")

# The settings every process that computes a stored number must share.
PINNED_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "OPENBLAS_CORETYPE": "Haswell",
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
# Read once when a library loads: setting them later changes nothing.
_LOAD_TIME = {"torch": ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS",
                        "MKL_NUM_THREADS"),
              "numpy": ("NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS")}


class NumericsError(RuntimeError):
    """Reproducible numerics were asked for but cannot be guaranteed in this process."""


def supported_platform() -> bool:
    """Pinning is defined for x86-64 only (ARM64 and Apple silicon have other kernels)."""
    return platform.machine().lower() in ("x86_64", "amd64")


def requested() -> bool:
    """Whether ``VQSTUDY_REPRODUCIBLE`` asks for the mode (an unknown value is an error)."""
    value = os.environ.get(ENV_FLAG, "").strip().lower()
    if value in FLAG_ON:
        return True
    if value in FLAG_OFF:
        return False
    raise NumericsError(f"environment variable {ENV_FLAG}={os.environ[ENV_FLAG]!r} is invalid: "
                        f"allowed values are {', '.join(repr(v) for v in FLAG_ON + FLAG_OFF[1:])}")


def _too_late() -> list[str]:
    """Pinned variables whose library is already loaded with another value."""
    late = []
    for module, names in _LOAD_TIME.items():
        if module in sys.modules:
            late += [n for n in names if os.environ.get(n) != PINNED_ENV[n]]
    return late


def pin() -> bool:
    """Pin every numeric library of this process (and of the processes it starts).

    Returns True when the mode is in force, False on a platform where it is
    not defined (the numbers then depend on the machine; the notebooks still
    run). Raises :class:`NumericsError` when torch or numpy was imported
    before the pins could take effect.
    """
    if not supported_platform():
        os.environ[ENV_FLAG] = "0"
        return False
    late = _too_late()
    if late and "google.colab" in sys.modules:
        # Colab's kernel loads numpy before the first cell; its CPUs and library builds differ from the
        # stored run's anyway, so the notebooks run there unpinned (like on ARM), and say so.
        warnings.warn("Colab: numeric libraries are already loaded, so numbers are not pinned and can differ "
                      "from the book's stored outputs in their last digits", stacklevel=2)
        os.environ[ENV_FLAG] = "0"
        return False
    if late:
        raise NumericsError(
            "reproducible numerics must be pinned before torch and numpy are imported, but "
            f"{', '.join(sorted(m for m in _LOAD_TIME if m in sys.modules))} already are, without "
            f"{', '.join(f'{n}={PINNED_ENV[n]}' for n in late)}. Call vqstudy.numerics.pin() before "
            f"importing torch or numpy, or set {ENV_FLAG}=1 before starting Python; in a notebook, restart "
            "the kernel and run the first cell first.")
    os.environ.update(PINNED_ENV)
    os.environ[ENV_FLAG] = "1"
    _pin_torch()
    return True


def _pin_torch() -> None:
    """Switch off the convolution back ends that pick kernels by CPU and check ATen's choice."""
    import torch

    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != "DEFAULT":
        raise NumericsError(f"torch runs {capability} kernels although ATEN_CPU_CAPABILITY=default was set: "
                            "torch was initialized before the pin; restart Python and pin first")


def pin_from_environment() -> bool:
    """Pin when ``VQSTUDY_REPRODUCIBLE`` asks for it; how spawned and Dask workers inherit the mode."""
    return pin() if requested() else False


def active() -> bool:
    """Whether this process computes under the pinned settings."""
    if not supported_platform() or os.environ.get(ENV_FLAG) != "1":
        return False
    if any(os.environ.get(k) != v for k, v in PINNED_ENV.items()):
        return False
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        return (torch.backends.cpu.get_cpu_capability() == "DEFAULT" and not torch.backends.mkldnn.enabled)
    return True


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), or what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_features() -> str:
    """The widest SIMD extension the CPU offers (what unpinned kernels would use)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return "unknown"
    for name in ("avx512f", "avx2", "avx", "sse4_2"):
        if name in flags:
            return name.upper()
    return "baseline"


def status() -> dict[str, Any]:
    """What a results file records about how its numbers were computed."""
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_features": cpu_features(),
        "cores": os.cpu_count(),
        "reproducible_numerics": active(),
    }
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            kib = int(next(line for line in fh if line.startswith("MemTotal")).split()[1])
        info["memory_gb"] = round(kib / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        info["memory_gb"] = None
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["threads"] = torch.get_num_threads()
    return info
