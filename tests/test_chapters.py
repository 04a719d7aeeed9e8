"""Each chapter notebook is thin: its parameters are its module's parameter model, and it defines nothing."""
from __future__ import annotations

import ast
import re
import importlib
from dataclasses import fields
from pathlib import Path

import nbformat
import pytest

from vqstudy import notebook as nbk

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _module(nb: Path):
    return importlib.import_module(f"vqstudy.chapters.{nb.stem.split('_', 1)[1]}")


def _cells(nb: Path, tag: str | None = None) -> list[str]:
    cells = [c for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "code"]
    return [c.source for c in cells if tag is None or tag in c.metadata.get("tags", [])]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_the_parameters_cell_declares_exactly_the_chapter_modules_parameter_model(nb: Path):
    model = _module(nb).Parameters
    assert issubclass(model, nbk.Parameters)
    [cell] = _cells(nb, "parameters")
    declared = {t.id: ast.literal_eval(node.value) for node in ast.parse(cell).body
                if isinstance(node, ast.Assign) for t in node.targets}
    defaults = model().to_dict()
    assert declared == defaults, "the parameters cell and the chapter's Parameters must name the same defaults"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_a_notebook_defines_no_function_or_class_and_validates_through_its_model(nb: Path):
    cells = _cells(nb)
    for source in cells:
        tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        defined = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert not defined, f"{nb.name} defines {defined}: move them into vqstudy.chapters"
    assert any("Parameters.from_notebook(globals())" in source for source in cells)
    assert not any("nbk.check_" in source for source in cells), "parameters are checked by the model, once"


HIDDEN_OUTPUT_TAGS = {"remove-cell", "remove-output"}
# A chapter's results file, the results folder, a notebook file or a machine's paths (a chapter may show a
# command's own file arguments, as chapter 7 shows `vqstudy diagnose tokenizer.pt`).
PLUMBING = re.compile(r"\b\d\d_\w+\.(json|ipynb)\b|results written|results/|/tmp/|/home/|site-packages")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_no_output_the_book_shows_names_files_or_paths(nb: Path):
    """Readers see claims, tables and figures; results files and paths are the main job's business."""
    for cell in nbformat.read(nb, as_version=4).cells:
        if cell.cell_type != "code" or HIDDEN_OUTPUT_TAGS & set(cell.metadata.get("tags", [])):
            continue
        for output in cell.get("outputs", []):
            text = "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
            assert not PLUMBING.search(text), f"{nb.name} shows {PLUMBING.search(text).group(0)!r}: hide that cell"
