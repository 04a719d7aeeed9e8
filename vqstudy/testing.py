"""The test suite's process set-up, as a pytest plugin loaded before any other (``-p vqstudy.testing``).

Every test process computes under the pinned numerics, and chapter notebooks run by nbval write their
results files into a temporary folder rather than over the committed ones. Both must happen before any
plugin or test imports torch or numpy, which is why this is an early plugin and not a conftest: pytest
loads ``-p`` plugins before the plugins that installed packages register. The notebook kernels that nbval
starts inherit this process's environment.
"""
import atexit
import os
import shutil
import tempfile

from . import numerics

RESULTS_ENV = "VQSTUDY_RESULTS_DIR"  # vqstudy.notebook.RESULTS_ENV; not imported: notebook loads torch

os.environ.setdefault(numerics.ENV_FLAG, "1")
if not os.environ.get(RESULTS_ENV):
    _results = tempfile.mkdtemp(prefix="vqstudy-test-results-")
    os.environ[RESULTS_ENV] = _results
    atexit.register(shutil.rmtree, _results, ignore_errors=True)
numerics.pin_from_environment()
