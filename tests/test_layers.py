"""Imports point down the layers written in the package docstring, and close no cycle."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import vqstudy

PACKAGE = Path(vqstudy.__file__).resolve().parent


def layers_from_docstring(doc: str) -> dict[str, int]:
    """``module -> layer`` from the numbered list in the package docstring (``N. ``mod``, ``mod``: ...``).

    An item may run over several lines; a subpackage's modules are listed as ``package.module``.
    """
    layers: dict[str, int] = {}
    for match in re.finditer(r"^(\d+)\. (.+?):", doc, flags=re.M | re.S):
        for name in re.findall(r"``([\w.]+)``", match[2]):
            layers[name] = int(match[1])
    return layers


def _is_subpackage(name: str) -> bool:
    return (PACKAGE / name / "__init__.py").is_file()


def _home(module: str) -> list[str]:
    """The package a module's relative imports start from: ``[]`` for ``io``, ``["book"]`` for ``book``
    (the subpackage's ``__init__``) and for ``book.toc``."""
    parts = module.split(".")
    return parts if len(parts) == 1 and _is_subpackage(parts[0]) else parts[:-1]


def _target(parts: list[str]) -> str:
    """The module that ``vqstudy.<parts>`` names: ``sweep``, ``book`` (the subpackage's ``__init__``),
    ``book.toc`` (a subpackage's module; anything below it is a name in it), ``__init__`` (the facade)."""
    if not parts:
        return "__init__"
    if _is_subpackage(parts[0]) and len(parts) > 1:
        return f"{parts[0]}.{parts[1]}"
    return parts[0]


def _is_module(parts: list[str]) -> bool:
    return (PACKAGE.joinpath(*parts[:-1]) / f"{parts[-1]}.py").is_file() \
        or (PACKAGE.joinpath(*parts) / "__init__.py").is_file()


def imports_of(source: str, module: str, package: str = "vqstudy") -> list[tuple[str, int]]:
    """``(imported vqstudy module, line)`` for every import in ``source``, those inside functions too.

    ``module`` is ``io``, ``book`` (``vqstudy/book/__init__.py``) or ``book.toc``; relative imports are
    resolved from its package. ``from <package> import name`` is the module ``name`` when that is a
    module of that package, else the package itself: the facade (``__init__``) for ``vqstudy``, as is
    ``import vqstudy``.
    """
    found = []
    home = _home(module)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == package:
                    found.append((_target(parts[1:]), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".") if node.module else []
            if node.level == 0 and (not parts or parts[0] != package):
                continue
            if node.level - 1 > len(home):
                raise AssertionError(f"{module}: relative import beyond the package at line {node.lineno}")
            base = parts[1:] if node.level == 0 else home[:len(home) - (node.level - 1)] + parts
            if base and not (len(base) == 1 and _is_subpackage(base[0])):
                found.append((_target(base), node.lineno))
            else:
                for alias in node.names:
                    named = base + [alias.name]
                    found.append((_target(named) if _is_module(named) else _target(base), node.lineno))
    return found


def _path(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 and _is_subpackage(module):
        return f"vqstudy/{module}/__init__.py"
    return "vqstudy/" + "/".join(parts) + ".py"


def violations(sources: dict[str, str], layers: dict[str, int]) -> list[str]:
    """Every import that points up a layer, imports the facade or an unlisted module, or closes a cycle.

    A subpackage's module (``book.toc``) is listed in its package's layer and may import the package's
    other modules; imports from it to the rest of vqstudy follow the same rules as any module's.
    """
    problems = []
    edges: dict[str, list[tuple[str, int]]] = {}
    for module, source in sorted(sources.items()):
        if module not in layers:
            problems.append(f"{_path(module)} is in no layer: add it to the package docstring")
            continue
        package = module.split(".")[0]
        if package != module and layers.get(package) != layers[module]:
            problems.append(f"{_path(module)} is listed in layer {layers[module]}, its package {package} in "
                            f"layer {layers.get(package)}: list them together")
        for target, line in imports_of(source, module):
            where = f"{_path(module)}:{line} imports vqstudy.{target}"
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
                found.append(f"{_path(module)}:{line} imports vqstudy.{target}, closing the cycle "
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
    """Every module of vqstudy but the facade: ``io``, and a subpackage's as ``book`` and ``book.toc``."""
    sources = {path.stem: path.read_text() for path in sorted(PACKAGE.glob("*.py")) if path.stem != "__init__"}
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        package = init.parent.name
        for path in sorted(init.parent.glob("*.py")):
            sources[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path.read_text()
    return sources


def test_every_import_points_down_and_closes_no_cycle():
    layers = layers_from_docstring(vqstudy.__doc__)
    assert layers["_version"] == 0 and layers["cli"] == max(layers.values())
    problems = violations(package_sources(), layers)
    assert not problems, "\n".join(problems)


LAYERS = {"_version": 0, "numerics": 0, "io": 0, "config": 0, "train": 2, "sweep": 3, "claims": 3, "cli": 5,
          "book": 4, "book.common": 4, "book.toc": 4, "book.pages": 4, "book.results": 4}


@pytest.mark.parametrize("sources, words", [
    ({"io": "from .sweep import run_sweep\n"}, ["vqstudy/io.py:1 imports vqstudy.sweep (layer 3) from layer 0"]),
    ({"train": "def f():\n    from . import cli\n"}, ["vqstudy/train.py:2 imports vqstudy.cli (layer 5)"]),
    ({"config": "import vqstudy.sweep as s\n"}, ["vqstudy/config.py:1 imports vqstudy.sweep"]),
    ({"io": "from . import __version__\n"}, ["vqstudy/io.py:1 imports vqstudy.__init__: the package facade"]),
    ({"io": "from .config import X\n", "config": "def f():\n    from .io import Y\n"},
     ["closing the cycle", "config -> io -> config"]),
    ({"sweep": "from .nosuch import x\n"}, ["imports vqstudy.nosuch, which is in no layer"]),
    ({"extra": "x = 1\n"}, ["vqstudy/extra.py is in no layer"]),
    ({"book.toc": "def f():\n    from .. import cli\n"},
     ["vqstudy/book/toc.py:2 imports vqstudy.cli (layer 5) from layer 4"]),
    ({"book.pages": "from ..cli import main\n"}, ["vqstudy/book/pages.py:1 imports vqstudy.cli (layer 5)"]),
    ({"book": "import vqstudy.cli\n"}, ["vqstudy/book/__init__.py:1 imports vqstudy.cli (layer 5)"]),
    ({"sweep": "from .book.pages import claims_page\n"},
     ["vqstudy/sweep.py:1 imports vqstudy.book.pages (layer 4) from layer 3"]),
    ({"book.toc": "from .. import __version__\n"},
     ["vqstudy/book/toc.py:1 imports vqstudy.__init__: the package facade"]),
    ({"book.pages": "from .results import x\n", "book.results": "def f():\n    from .pages import y\n"},
     ["closing the cycle", "book.pages -> book.results -> book.pages"]),
    ({"book": "from .toc import write_toc\n", "book.toc": "from . import BookError\n"},
     ["vqstudy/book/toc.py:1 imports vqstudy.book, closing the cycle book -> book.toc -> book"]),
    ({"book.toc": "from .nosuch import x\n"}, ["imports vqstudy.book.nosuch, which is in no layer"]),
    ({"book.extra": "x = 1\n"}, ["vqstudy/book/extra.py is in no layer"]),
])
def test_the_checker_names_each_bad_import(sources, words):
    message = "\n".join(violations(sources, LAYERS))
    for word in words:
        assert word in message


def test_a_listed_module_that_does_not_exist_yet_is_allowed():
    assert "numerics" in layers_from_docstring(vqstudy.__doc__)
    assert violations({"io": "import os\n", "config": "from ._version import __version__\n"}, LAYERS) == []


def test_a_subpackage_module_imports_its_package_and_the_layers_below():
    sources = {"book": "from .toc import write_toc\nfrom . import pages\n",
               "book.toc": "import re\nfrom ..claims import X\nfrom .. import io\nfrom .common import ROOT\n",
               "book.pages": "from . import toc, results\nfrom vqstudy.book.common import ROOT\n",
               "book.results": "from .common import BookError\nfrom ..config import RunConfig\n",
               "book.common": "from ..io import write_atomic\n"}
    assert violations(sources, LAYERS) == []
    assert imports_of(sources["book.pages"], "book.pages") == [("book.toc", 1), ("book.results", 1),
                                                                ("book.common", 2)]


def test_a_subpackage_module_is_listed_in_its_package_layer():
    message = "\n".join(violations({"book.toc": "x = 1\n"}, {**LAYERS, "book.toc": 3}))
    assert "vqstudy/book/toc.py is listed in layer 3, its package book in layer 4" in message


def test_a_relative_import_beyond_the_package_is_refused():
    with pytest.raises(AssertionError, match="beyond the package"):
        imports_of("from ...x import y\n", "book.toc")
    with pytest.raises(AssertionError, match="beyond the package"):
        imports_of("from ..x import y\n", "io")
