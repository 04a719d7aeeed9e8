"""Where the study is published, derived from one setting: ``repository.url`` in ``_config.yml``.

Jupyter Book's launch, repository and issue buttons read that setting themselves. Every other copy of
the address (README badges, ``CITATION.cff``, the references, pyproject's URLs, each chapter's Colab
install cell) is rewritten from it by ``python -m vqstudy.publish`` and checked by the tests
(``python -m vqstudy.publish --check``), so a fork changes one line and runs one command.

The Colab cell is the first code cell of every chapter, tagged ``remove-cell`` (the book does not show
it). On Colab (``google.colab`` imported) it pip-installs this package from the repository, with the
``interop`` extra where the chapter uses vector-quantize-pytorch; anywhere else it does nothing and
prints nothing, so ``pytest --nbval`` and papermill runs are unaffected.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = "_config.yml"
PACKAGE = "vqstudy"
PLACEHOLDER = "OWNER"
# These two files spell out the placeholder in order to detect it.
EXEMPT = ("vqstudy/publish.py", "tests/test_publish.py")
INSTALL_CELL_ID = "colab-install"
INSTALL_CELL_TAG = "remove-cell"
SKIP_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".pdf", ".ico", ".woff", ".woff2", ".ttf", ".whl",
                 ".gz", ".zip", ".pyc"}

_URL = re.compile(r"https://github\.com/(?P<owner>[A-Za-z0-9-]+)/(?P<name>[A-Za-z0-9._-]+?)(?:\.git)?/?")
# Forms in which a GitHub repository appears: github.com/O/N (also inside git+ and Colab URLs),
# mybinder.org/v2/gh/O/N, colab.research.google.com/github/O/N, and the Pages site O.github.io/N.
_ADDRESS = re.compile(
    r"(?P<prefix>github\.com/|/v2/gh/|colab\.research\.google\.com/github/)"
    r"(?P<owner>[A-Za-z0-9-]+)/(?P<name>[A-Za-z0-9_.-]*[A-Za-z0-9_-])"
    r"|(?<![A-Za-z0-9-])(?P<powner>[A-Za-z0-9-]+)\.github\.io/(?P<pname>[A-Za-z0-9_.-]*[A-Za-z0-9_-])")
_INTEROP = re.compile(r"\bvector_quantize_pytorch\b|\bvqstudy\.interop\b|from vqstudy import [^\n]*\binterop\b")


@dataclass(frozen=True)
class Repository:
    """The public repository: every published address is a function of owner, name and branch."""

    owner: str
    name: str
    branch: str = "main"

    @property
    def url(self) -> str:
        return f"https://github.com/{self.owner}/{self.name}"

    @property
    def pages(self) -> str:
        """The GitHub Pages site the book workflow deploys to."""
        return f"https://{self.owner.lower()}.github.io/{self.name}/"

    @property
    def binder(self) -> str:
        return f"https://mybinder.org/v2/gh/{self.owner}/{self.name}/{self.branch}"

    def colab(self, notebook: str) -> str:
        return f"https://colab.research.google.com/github/{self.owner}/{self.name}/blob/{self.branch}/{notebook}"

    def requirement(self, extras: Sequence[str] = ()) -> str:
        """A pip requirement that installs the package from the repository's branch."""
        extra = f"[{','.join(extras)}]" if extras else ""
        return f"{PACKAGE}{extra} @ git+{self.url}@{self.branch}"


def parse_repository(url: str, branch: str = "main") -> Repository:
    """``https://github.com/OWNER/NAME`` -> Repository; a placeholder or another host fails with what to set."""
    match = _URL.fullmatch(str(url).strip())
    if not match:
        raise ValueError(f"repository.url in {CONFIG} must be https://github.com/<owner>/<name>, got {url!r}")
    if match["owner"] == PLACEHOLDER:
        raise ValueError(f"repository.url in {CONFIG} is still the placeholder {url!r}: set it to the public "
                         f"repository (https://github.com/<owner>/<name>), then run `python -m vqstudy.publish`")
    if not branch or not re.fullmatch(r"[A-Za-z0-9._/-]+", str(branch)):
        raise ValueError(f"repository.branch in {CONFIG} must be a branch name, got {branch!r}")
    return Repository(match["owner"], match["name"], str(branch))


def repository(root: Path = ROOT) -> Repository:
    """The repository named by ``repository.url`` (and ``repository.branch``) in the book's ``_config.yml``."""
    config = yaml.safe_load((Path(root) / CONFIG).read_text(encoding="utf-8")) or {}
    section = config.get("repository") or {}
    if "url" not in section:
        raise ValueError(f"{CONFIG} has no repository.url: set it to https://github.com/<owner>/<name>")
    return parse_repository(section["url"], section.get("branch", "main"))


# --- the Colab install cell ----------------------------------------------------------------------

def chapter_extras(nb: dict) -> list[str]:
    """The package extras a chapter imports: ``interop`` where it uses vector-quantize-pytorch."""
    code = "\n".join("".join(c.get("source", "")) for c in nb.get("cells", [])
                     if c.get("cell_type") == "code" and c.get("id") != INSTALL_CELL_ID)
    return ["interop"] if _INTEROP.search(code) else []


def colab_install_source(repo: Repository, extras: Sequence[str] = ()) -> str:
    """The install cell's code: pip-installs the package on Colab only, silent everywhere else."""
    requirement = json.dumps(repo.requirement(extras))
    return ("# On Colab only: install this study's package from its repository. Elsewhere this cell does nothing.\n"
            "import sys\n"
            "\n"
            "if \"google.colab\" in sys.modules:\n"
            "    import importlib\n"
            "    import subprocess\n"
            "\n"
            "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"--quiet\",\n"
            f"                    {requirement}], check=True)\n"
            "    importlib.invalidate_caches()  # let this kernel import the package it just installed")


def install_cell(repo: Repository, nb: dict) -> dict:
    """A fresh install cell for ``nb`` (nbformat 4.5 code cell, no outputs)."""
    return {"cell_type": "code", "execution_count": None, "id": INSTALL_CELL_ID,
            "metadata": {"tags": [INSTALL_CELL_TAG]}, "outputs": [],
            "source": colab_install_source(repo, chapter_extras(nb)).splitlines(keepends=True)}


def first_code_cell(nb: dict) -> dict | None:
    return next((c for c in nb.get("cells", []) if c.get("cell_type") == "code"), None)


def has_install_cell(nb: dict, repo: Repository) -> bool:
    """True when the first code cell is the generated install cell (same code, tagged ``remove-cell``)."""
    cell = first_code_cell(nb)
    return (cell is not None and "".join(cell.get("source", "")) == colab_install_source(repo, chapter_extras(nb))
            and INSTALL_CELL_TAG in cell.get("metadata", {}).get("tags", []))


def with_install_cell(nb: dict, repo: Repository) -> bool:
    """Make the generated install cell ``nb``'s first code cell, in place; False when it already was.

    An install cell already present keeps its id, outputs and metadata (e.g. from an executed run);
    only its code and tag are brought up to date, and it moves in front of every other code cell.
    """
    if has_install_cell(nb, repo):
        return False
    cells = nb.setdefault("cells", [])
    fresh = install_cell(repo, nb)
    old = next((c for c in cells if c.get("id") == INSTALL_CELL_ID), None)
    if old is not None:
        cells.remove(old)
        old["source"] = fresh["source"]
        tags = old.setdefault("metadata", {}).setdefault("tags", [])
        if INSTALL_CELL_TAG not in tags:
            tags.append(INSTALL_CELL_TAG)
        fresh = old
    at = next((i for i, c in enumerate(cells) if c.get("cell_type") == "code"), len(cells))
    cells.insert(at, fresh)
    return True


def _dump_notebook(nb: dict, trailing_newline: bool) -> str:
    """nbformat's own layout (indent 1, sorted keys, UTF-8 as is)."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + ("\n" if trailing_newline else "")


def insert_install_cell(path: str | Path, repo: Repository) -> bool:
    """Add or update the install cell of one stored notebook by editing its JSON; True when the file changed.

    Nothing else in the notebook changes: outputs, metadata and layout stay as stored. A notebook whose
    text is not in nbformat's layout is refused rather than reformatted.
    """
    path = Path(path)
    raw = path.read_text(encoding="utf-8")
    nb = json.loads(raw)
    if nb.get("nbformat") != 4:
        raise ValueError(f"{path}: nbformat must be 4, got {nb.get('nbformat')!r}")
    newline = raw.endswith("\n")
    if _dump_notebook(nb, newline) != raw:
        raise ValueError(f"{path} is not in nbformat's layout (indent 1, sorted keys); save it with nbformat first")
    if not with_install_cell(nb, repo):
        return False
    path.write_text(_dump_notebook(nb, newline), encoding="utf-8")
    return True


# --- every other copy of the address -------------------------------------------------------------

def chapters(root: Path = ROOT) -> list[Path]:
    return sorted(p for p in (Path(root) / "notebooks").glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _files(root: Path) -> list[Path]:
    """The repository's files (tracked or not ignored), without binary assets."""
    root = Path(root)
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                             capture_output=True, text=True, check=True).stdout
        names = sorted({n for n in out.split("\0") if n})
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "_build", "build", "dist", "runs", "node_modules", "__pycache__", ".pytest_cache"}
        names = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                       if p.is_file() and not skip & set(p.relative_to(root).parts)
                       and not any(part.endswith(".egg-info") for part in p.relative_to(root).parts))
    return [root / n for n in names if Path(n).suffix.lower() not in SKIP_SUFFIXES and n not in EXEMPT
            and (root / n).is_file()]


def _is_project(owner: str, name: str, repo: Repository) -> bool:
    """Whether an address names this project (its repository or package name), whatever the owner."""
    name = name.removesuffix(".git").lower()
    return name in {repo.name.lower(), PACKAGE} or owner == PLACEHOLDER


def _owner_name(match: re.Match) -> tuple[str, str]:
    return (match["owner"], match["name"]) if match["owner"] else (match["powner"], match["pname"])


def _stale(match: re.Match, repo: Repository) -> bool:
    owner, name = _owner_name(match)
    if not _is_project(owner, name, repo):
        return False
    return owner.lower() != repo.owner.lower() or name.removesuffix(".git") != repo.name


def problems(root: Path = ROOT) -> list[str]:
    """Every place where the published address disagrees with ``repository.url``, as readable messages."""
    root = Path(root)
    try:
        repo = repository(root)
    except ValueError as exc:
        return [str(exc)]
    hint = f"set the address only in {CONFIG} (repository.url = {repo.url}) and run `python -m vqstudy.publish`"
    found = []
    for path in _files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        rel = path.relative_to(root)
        for lineno, line in enumerate(text.splitlines(), 1):
            for m in _ADDRESS.finditer(line):
                if _stale(m, repo):
                    found.append(f"{rel}:{lineno}: {m.group(0)!r} disagrees with {repo.url}: {hint}")
            if re.search(rf"\b{PLACEHOLDER}\b", line) and not any(_stale(m, repo) for m in _ADDRESS.finditer(line)):
                found.append(f"{rel}:{lineno}: placeholder {PLACEHOLDER!r} left: {hint}")
    for nb_path in chapters(root):
        if not has_install_cell(json.loads(nb_path.read_text(encoding="utf-8")), repo):
            found.append(f"{nb_path.relative_to(root)}: the first code cell is not the Colab install cell "
                         f"generated from {repo.url}: run `python -m vqstudy.publish`")
    return found


def _rewrite(match: re.Match, repo: Repository) -> str:
    if not _stale(match, repo):
        return match.group(0)
    if match["owner"]:
        return f"{match['prefix']}{repo.owner}/{repo.name}"
    return f"{repo.owner.lower()}.github.io/{repo.name}"


def publish(root: Path = ROOT) -> list[Path]:
    """Rewrite every copy of the address from ``repository.url`` and update the chapters' install cells.

    Returns the files changed. Idempotent: a second run changes nothing.
    """
    root = Path(root)
    repo = repository(root)
    changed = []
    for path in _files(root):
        if path.name == CONFIG and path.parent == root:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        new = _ADDRESS.sub(lambda m: _rewrite(m, repo), text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    for nb_path in chapters(root):
        if insert_install_cell(nb_path, repo) and nb_path not in changed:
            changed.append(nb_path)
    return changed


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vqstudy.publish",
        description=f"Derive every published address from repository.url in {CONFIG}.",
        epilog="example: set repository.url in _config.yml, then: python -m vqstudy.publish")
    parser.add_argument("--check", action="store_true", help="change nothing; list disagreements, exit 1 if any")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(None if argv is None else list(argv))
    if args.check:
        found = problems(args.root)
        print("\n".join(found) if found else f"every address agrees with {repository(args.root).url}")
        return 1 if found else 0
    try:
        changed = publish(args.root)
    except ValueError as exc:
        print(f"python -m vqstudy.publish: error: {exc}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"updated {Path(path).relative_to(args.root)}")
    left = problems(args.root)
    for line in left:
        print(line, file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
