"""Imports point down the layers written in the package docstring, and close no cycle."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import vqstudy

PACKAGE = Path(vqstudy.__file__).resolve().parent


def layers_from_docstring(doc: str) -> dict[str, int]:
    """``module -> layer`` from the numbered list in the package docstring (``N. ``mod``, ``mod``: ...``)."""
    layers: dict[str, int] = {}
    for match in re.finditer(r"^(\d+)\. (.+?):", doc, flags=re.M):
        for name in re.findall(r"``(\w+)``", match[2]):
            layers[name] = int(match[1])
    return layers


def imports_of(source: str, module: str, package: str = "vqstudy") -> list[tuple[str, int]]:
    """``(imported vqstudy module, line)`` for every import in ``source``, those inside functions too.

    ``from . import name`` is the module ``name`` when that is a module of the package, else the
    package facade (``__init__``), as is ``import vqstudy``.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == package:
                    found.append((parts[1] if len(parts) > 1 else "__init__", node.lineno))
        elif isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".") if node.module else []
            if node.level == 0 and (not parts or parts[0] != package):
                continue
            if node.level > 1:
                raise AssertionError(f"{module}: relative import beyond the package at line {node.lineno}")
            inner = parts[1:] if node.level == 0 else parts
            if inner:
                found.append((inner[0], node.lineno))
            else:
                for alias in node.names:
                    is_module = (PACKAGE / f"{alias.name}.py").is_file() or (PACKAGE / alias.name).is_dir()
                    found.append((alias.name if is_module else "__init__", node.lineno))
    return found


def violations(sources: dict[str, str], layers: dict[str, int]) -> list[str]:
    """Every import that points up a layer, imports the facade or an unlisted module, or closes a cycle."""
    problems = []
    edges: dict[str, list[tuple[str, int]]] = {}
    for module, source in sorted(sources.items()):
        if module not in layers:
            problems.append(f"vqstudy/{module}.py is in no layer: add it to the package docstring")
            continue
        for target, line in imports_of(source, module):
            where = f"vqstudy/{module}.py:{line} imports vqstudy.{target}"
            if target == "__init__":
                problems.append(f"{where}: the package facade; import the module that defines the name")
            elif target not in layers:
                problems.append(f"{where}, which is in no layer")
            elif layers[target] > layers[module]:
                problems.append(f"{where} (layer {layers[target]}) from layer {layers[module]}: imports must "
                                "point down")
            elif target != module:
                edges.setdefault(module, []).append((target, line))
    problems += _cycles(edges)
    return problems


def _cycles(edges: dict[str, list[tuple[str, int]]]) -> list[str]:
    """One message per import that closes a cycle (depth-first search, back edges)."""
    state: dict[str, int] = {}        # 1 on the stack, 2 done
    stack: list[str] = []
    found = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target, line in edges.get(module, []):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                found.append(f"vqstudy/{module}.py:{line} imports vqstudy.{target}, closing the cycle "
                             + " -> ".join(cycle))
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    return found


def package_sources() -> dict[str, str]:
    return {path.stem: path.read_text() for path in sorted(PACKAGE.glob("*.py")) if path.stem != "__init__"}


def test_every_import_points_down_and_closes_no_cycle():
    layers = layers_from_docstring(vqstudy.__doc__)
    assert layers["_version"] == 0 and layers["cli"] == max(layers.values())
    problems = violations(package_sources(), layers)
    assert not problems, "\n".join(problems)


LAYERS = {"_version": 0, "numerics": 0, "io": 0, "config": 0, "train": 2, "sweep": 3, "cli": 5}


@pytest.mark.parametrize("sources, words", [
    ({"io": "from .sweep import run_sweep\n"}, ["vqstudy/io.py:1 imports vqstudy.sweep (layer 3) from layer 0"]),
    ({"train": "def f():\n    from . import cli\n"}, ["vqstudy/train.py:2 imports vqstudy.cli (layer 5)"]),
    ({"config": "import vqstudy.sweep as s\n"}, ["vqstudy/config.py:1 imports vqstudy.sweep"]),
    ({"io": "from . import __version__\n"}, ["vqstudy/io.py:1 imports vqstudy.__init__: the package facade"]),
    ({"io": "from .config import X\n", "config": "def f():\n    from .io import Y\n"},
     ["closing the cycle", "config -> io -> config"]),
    ({"sweep": "from .nosuch import x\n"}, ["imports vqstudy.nosuch, which is in no layer"]),
    ({"extra": "x = 1\n"}, ["vqstudy/extra.py is in no layer"]),
])
def test_the_checker_names_each_bad_import(sources, words):
    message = "\n".join(violations(sources, LAYERS))
    for word in words:
        assert word in message


def test_a_listed_module_that_does_not_exist_yet_is_allowed():
    assert "numerics" in layers_from_docstring(vqstudy.__doc__)
    assert violations({"io": "import os\n", "config": "from ._version import __version__\n"}, LAYERS) == []
