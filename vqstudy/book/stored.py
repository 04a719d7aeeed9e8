"""Reading a chapter notebook's stored run: its title, results id, parameters and printed output."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from .common import BookError


def _read_notebook(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BookError(f"cannot read notebook {path}: {exc}") from None


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def notebook_title(path: Path) -> str:
    for cell in _read_notebook(path).get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in _source(cell).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return Path(path).stem


def expected_results(path: Path) -> str | None:
    """The chapter id the notebook writes results for (``Claims("<id>")``, which may record no claim and keep
    only numbers, as chapter 5 does), or None if it writes no results file."""
    for cell in _read_notebook(path).get("cells", []):
        if cell.get("cell_type") == "code":
            match = re.search(r"Claims\(\s*['\"]([^'\"]+)['\"]", _source(cell))
            if match:
                return match.group(1)
    return None


def _literal_assignments(source: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return values
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return values


def stored_parameters(nb: dict) -> dict[str, Any]:
    """The parameters of the notebook's stored run: the ``parameters`` cell overridden by papermill's."""
    params: dict[str, Any] = {}
    for tag in ("parameters", "injected-parameters"):
        for cell in nb.get("cells", []):
            if cell.get("cell_type") == "code" and tag in _tags(cell):
                params.update(_literal_assignments(_source(cell)))
                break
    return params


def stored_stdout(nb: dict) -> str:
    """All stdout the stored run printed, cells joined by newlines."""
    parts = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                parts.append(_source({"source": out.get("text", "")}))
    return "\n".join(parts)


def has_outputs(nb: dict) -> bool:
    return any(cell.get("outputs") for cell in nb.get("cells", []) if cell.get("cell_type") == "code")
