"""What a chapter shares: its parameter checks stop a papermill run with the reason as the last line."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from vqstudy import notebook as nbk


def test_parameter_errors_are_value_errors_naming_the_parameter():
    with pytest.raises(ValueError, match=r"parameter profile='bogus' is invalid: allowed values are 'quick', 'full'"):
        nbk.check_choice("profile", "bogus", nbk.PROFILES)
    with pytest.raises(nbk.ParameterError, match="seeds"):
        nbk.check_ints("seeds", [0, 0])


def test_fraction_and_positive_checks_refuse_what_is_out_of_range():
    assert nbk.check_fraction("main_fraction", 0.5) == 0.5
    for bad in (0, 1, 1.5, -0.1, True, "0.5", float("nan")):
        with pytest.raises(nbk.ParameterError, match=r"parameter main_fraction=.* strictly between 0 and 1"):
            nbk.check_fraction("main_fraction", bad)
    assert nbk.check_positive("restart_threshold", 2) == 2.0
    for bad in (0, -1, float("inf"), float("nan"), False, None):
        with pytest.raises(nbk.ParameterError, match=r"parameter restart_threshold=.* finite number > 0"):
            nbk.check_positive("restart_threshold", bad)


def test_papermill_with_a_bad_profile_ends_with_the_reason(tmp_path: Path):
    """`papermill -p profile bogus` fails fast, and the reason is all the error cell shows."""
    import nbformat
    import papermill as pm

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "quick"')
    params.metadata["tags"] = ["parameters"]
    check = nbformat.v4.new_code_cell('from vqstudy.chapters import real_images\n'
                                      'real_images.Parameters.from_notebook(globals())')
    nb.cells = [params, check, nbformat.v4.new_code_cell('print("ran on")')]
    source, executed = tmp_path / "chapter.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, source)
    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(str(source), str(executed), parameters={"profile": "bogus"}, kernel_name="python3",
                            progress_bar=False, cwd=str(tmp_path))
    message = "ParameterError: parameter profile='bogus' is invalid: allowed values are 'quick', 'full'"
    assert str(info.value).strip().splitlines()[-1] == message
    cells = json.loads(executed.read_text())["cells"]
    errors = [o for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert [e["traceback"] for e in errors] == [[message]]          # no frames, no source lines
    assert cells[-1]["outputs"] == []                                 # fail-fast kept: nothing ran after it


def test_glue_text_formats_numbers_as_the_tables_do_and_emits_myst_nbs_glue(monkeypatch):
    import IPython.display
    import numpy as np

    from vqstudy.notebook import glue_text

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: shown.append((a, k)))
    texts = glue_text({"a": 0.012345, "b": np.int64(9), "c": "reproduced", "d": -1.5, "e": True})
    assert texts == {"a": "0.0123", "b": "9", "c": "reproduced", "d": "−1.50", "e": "True"}
    assert len(shown) == 5
    with pytest.raises(ValueError, match="glue name"):
        glue_text({"bad name": 1.0})

    glue_module = pytest.importorskip("myst_nb.ext.glue")
    theirs = []
    monkeypatch.setattr(glue_module, "ipy_display", lambda *a, **k: theirs.append((a, k)))
    glue_module.glue("c", "reproduced", display=False)
    assert theirs == [shown[2]]


def test_full_profile_work_ratio_multiplies_the_factors_of_a_quick_run():
    from vqstudy.notebook import ParameterError, full_profile_work_ratio

    assert full_profile_work_ratio("quick", 2, 4) == 8.0
    assert full_profile_work_ratio("full", 2, 4) == 1.0
    with pytest.raises(ParameterError, match="profile"):
        full_profile_work_ratio("huge", 2)
    with pytest.raises(ParameterError, match="work factor 0"):
        full_profile_work_ratio("quick", 0)


@dataclass(frozen=True)
class _Example(nbk.Parameters):
    seeds: list = nbk.param(list(range(10)), nbk.check_ints, min_len=10)
    steps: int = nbk.param(100, nbk.check_int, low=10)
    share: float = nbk.param(0.5, nbk.check_fraction)

    def full_profile(self):
        return {"seeds": list(range(10, 30)), "steps": 4 * self.steps}

    def check_relations(self):
        if self.share * self.steps < 1:
            raise self.invalid("share", f"{self.share} of steps={self.steps} is no step at all")


def test_a_parameter_model_validates_each_value_once_and_names_it():
    params = _Example.from_notebook({"profile": "quick", "steps": 20, "unrelated": object()})
    assert (params.steps, params.seeds, params.share) == (20, list(range(10)), 0.5)
    assert params.to_dict() == {"profile": "quick", "seeds": list(range(10)), "steps": 20, "share": 0.5}
    for namespace, message in [({"profile": "bogus"}, "parameter profile='bogus' is invalid: allowed values are 'quick', 'full'"),
                               ({"steps": 5}, "parameter steps=5 is invalid: expected an integer >= 10"),
                               ({"seeds": [0, 1]}, "parameter seeds=[0, 1] is invalid"),
                               ({"share": 0.001}, "parameter share=0.001 is invalid: 0.001 of steps=100 is no step")]:
        with pytest.raises(nbk.ParameterError, match=re.escape(message)):
            _Example.from_notebook(namespace)


def test_the_full_profile_replaces_its_presets_and_is_validated_again():
    params = _Example.from_notebook({"profile": "full", "steps": 50})
    assert (params.seeds, params.steps) == (list(range(10, 30)), 200)
    assert _Example().seeds is not _Example().seeds   # list defaults are not shared between instances
    # the relations are checked once, on the full profile's values: share 0.005 of 50 steps is no step, of 200 one
    assert _Example.from_notebook({"profile": "full", "steps": 50, "share": 0.005}).steps == 200
