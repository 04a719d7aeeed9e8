"""Reproducible numerics: the same digits from every x86-64 CPU.

Each emulated CPU is a fresh process whose numeric libraries are restricted,
through their own environment variables, to the kernels such a CPU would run.
Under the pinned mode every emulation must reproduce the digest committed in
tests/numerics/digests.json (made on another machine is the real test: CI runs
on Intel and AMD CPUs alike); unpinned, the emulations must disagree, which
shows the check can fail.
"""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from vqstudy import numerics

HERE = Path(__file__).resolve().parent / "numerics"
COMMITTED = json.loads((HERE / "digests.json").read_text())
RESTRICT = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR", "OPENBLAS_CORETYPE": "Haswell"},
    "sse42": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41",
              "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR", "OPENBLAS_CORETYPE": "Nehalem"},
}
x86_only = pytest.mark.skipif(not numerics.supported_platform(), reason="pinning is defined for x86-64 only")


def run_digest(cpu: str, pinned: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED_ENV and k != numerics.ENV_FLAG}
    env.update(RESTRICT[cpu])
    env[numerics.ENV_FLAG] = "1" if pinned else "0"
    out = subprocess.run([sys.executable, str(HERE / "digest_run.py")], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@x86_only
@pytest.mark.parametrize("cpu", sorted(RESTRICT))
def test_pinned_runs_match_the_committed_digest(cpu):
    got = run_digest(cpu, pinned=True)
    assert got["_status"] == {"cpu_capability": "DEFAULT", "reproducible_numerics": True}
    assert {k: got[k] for k in ("mlp", "conv")} == COMMITTED, (
        f"{cpu}: pinned training gave {got}, the committed digest is {COMMITTED} "
        f"(CPU {numerics.cpu_model()}, {platform.machine()})")


@x86_only
def test_unpinned_runs_depend_on_the_cpu():
    """Without the pins the emulated CPUs disagree: the digest test above can fail."""
    digests = {cpu: run_digest(cpu, pinned=False) for cpu in ("native", "sse42")}
    assert digests["native"]["_status"]["reproducible_numerics"] is False
    assert digests["native"]["mlp"] != digests["sse42"]["mlp"]


def test_pinning_after_torch_is_imported_is_refused():
    code = ("import os; [os.environ.pop(k, None) for k in %r]; import torch; from vqstudy import numerics\n"
            "try:\n    numerics.pin()\nexcept numerics.NumericsError as e:\n    print('refused:', e)\n"
            % (list(numerics.PINNED_ENV) + [numerics.ENV_FLAG],))
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED_ENV and k != numerics.ENV_FLAG}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    if not numerics.supported_platform():
        pytest.skip("pinning is defined for x86-64 only")
    assert "refused: reproducible numerics must be pinned before torch" in out.stdout, out.stdout + out.stderr


def test_invalid_flag_value_names_the_variable(monkeypatch):
    monkeypatch.setenv(numerics.ENV_FLAG, "maybe")
    with pytest.raises(numerics.NumericsError, match="VQSTUDY_REPRODUCIBLE='maybe' is invalid: allowed values"):
        numerics.requested()


def test_this_test_process_is_pinned():
    """conftest pins the suite (and the notebook kernels it starts inherit the environment)."""
    assert numerics.active() == numerics.supported_platform()
    status = numerics.status()
    assert {"cpu_model", "cores", "reproducible_numerics", "cpu_capability", "threads"} <= set(status)


def test_lax_command_runs_every_cell_without_comparing_outputs():
    """The README's command for platforms the pinned mode does not cover, on the shortest chapter.

    It executes every cell (the claim checks included) and fails on any error, but compares no stored
    output; the main nbval run of the suite covers every chapter strictly.
    """
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
                          "notebooks/01_synthetic_data.ipynb"], cwd=root, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout


def test_sweep_workers_inherit_the_pinned_mode(tiny_config):
    """Spawned pool workers record that they computed under the pins, like this process."""
    from vqstudy.sweep import sweep

    runs = sweep([tiny_config.replace(train={"seed": s}) for s in (0, 1)], workers=2, progress=False)
    assert [r.environment["reproducible_numerics"] for r in runs] == [numerics.active()] * 2
    assert all(r.environment["cpu_capability"] == ("DEFAULT" if numerics.active() else r.environment["cpu_capability"])
               for r in runs)


def test_the_test_plugin_and_the_notebooks_agree_on_the_results_variable():
    from vqstudy import notebook, testing

    assert testing.RESULTS_ENV == notebook.RESULTS_ENV
    assert str(notebook.results_dir()) == os.environ[notebook.RESULTS_ENV]   # never the committed results/


def test_on_colab_a_late_pin_warns_and_runs_unpinned():
    """Colab's kernel imports numpy before the first cell: the chapters must still run there."""
    code = ("import sys, types, warnings; sys.modules['google.colab'] = types.ModuleType('google.colab')\n"
            "import numpy\nfrom vqstudy import numerics\n"
            "with warnings.catch_warnings(record=True) as w:\n    warnings.simplefilter('always')\n"
            "    print(numerics.pin(), numerics.active(), any('not pinned' in str(x.message) for x in w))\n")
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED_ENV and k != numerics.ENV_FLAG}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    expected = "False False True" if numerics.supported_platform() else "False False"
    assert out.stdout.strip().startswith(expected), out.stdout + out.stderr


def test_a_worker_without_the_pins_records_a_failure_not_numbers(tiny_config):
    """A Dask worker started without VQSTUDY_REPRODUCIBLE=1 must not store unpinned numbers in a pinned sweep."""
    from unittest import mock

    from vqstudy.sweep import _execute

    with mock.patch.object(numerics, "active", return_value=False):
        outcome, = _execute([tiny_config.to_dict()], pinned=True)
    assert outcome["status"] == "failed"
    assert "VQSTUDY_REPRODUCIBLE=1 dask worker" in outcome["reason"]
    assert _execute([tiny_config.to_dict()], pinned=False)[0]["status"] == "ok"
