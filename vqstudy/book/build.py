"""Executing the chapters (papermill), building the book strictly, and the main job that does both."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .. import numerics
from .common import ROOT, STRICT_ENV, BookError
from .pages import generate_pages
from .toc import toc_chapters, write_toc


STRICT_BUILD = ("-W", "-n", "--keep-going")


def _jupyter_book() -> list[str]:
    exe = Path(sys.executable).parent / "jupyter-book"
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if not found:
        raise BookError("jupyter-book is not installed: pip install -r requirements.txt")
    return [found]


def build_book(root: Path = ROOT, output: Path | None = None, strict_pages: bool = False,
               quiet: bool = False) -> tuple[Path, float]:
    """``jupyter-book build -W -n --keep-going`` (warnings are errors); returns (index.html, seconds)."""
    root = Path(root)
    cmd = _jupyter_book() + ["build", *STRICT_BUILD]
    if output is not None:
        cmd += ["--path-output", str(output)]
    cmd.append(str(root))
    env = dict(os.environ)
    env[STRICT_ENV] = "1" if strict_pages else env.get(STRICT_ENV, "0")
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, text=True, capture_output=quiet)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        detail = ("\n" + (proc.stdout or "")[-6000:] + (proc.stderr or "")[-4000:]) if quiet else ""
        raise BookError(f"the strict book build failed (exit {proc.returncode}): {' '.join(cmd)}{detail}")
    index = (Path(output) if output is not None else root) / "_build" / "html" / "index.html"
    return index, seconds


def execute_chapters(chapters: list[Path], profile: str, root: Path = ROOT) -> None:
    """Run each chapter with papermill (kernel python3, cwd notebooks/); stop at the first failure.

    A chapter is executed into a temporary copy that replaces the notebook only on success, so a
    failure never leaves a half-run notebook behind (the failed copy is kept under _build/failed/).
    Papermill replaces an existing ``injected-parameters`` cell, so reruns do not pile them up.
    """
    import papermill as pm
    from tqdm.auto import tqdm

    root = Path(root)
    bar = tqdm(chapters, desc="chapters", unit="chapter", file=sys.stdout)
    for nb in bar:
        bar.set_postfix_str(nb.name)
        tmp = nb.with_name(f".{nb.stem}.running.ipynb")
        started = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(tmp), parameters={"profile": profile}, kernel_name="python3",
                                cwd=str(root / "notebooks"), progress_bar=True, log_output=False)
        except Exception as exc:  # papermill raises PapermillExecutionError with the failing cell
            failed = root / "_build" / "failed" / nb.name
            failed.parent.mkdir(parents=True, exist_ok=True)
            if tmp.is_file():
                os.replace(tmp, failed)
            bar.close()
            first = str(exc).strip().splitlines()
            raise BookError(f"chapter {nb.name} failed after {time.perf_counter() - started:.0f} s: "
                            f"{first[-1] if first else type(exc).__name__}. The executed copy is "
                            f"{failed}; the committed notebook is unchanged.") from None
        _keep_outputs_only(tmp, nb)
        tqdm.write(f"{nb.name}: done in {time.perf_counter() - started:.0f} s", file=sys.stdout)
    bar.close()


# Per-execution metadata that papermill and nbclient write (times, paths): dropped from stored
# notebooks so that rerunning the same code on any machine rewrites them byte for byte.
_CELL_RUN_KEYS = ("execution", "papermill")
_NOTEBOOK_RUN_KEYS = ("duration", "start_time", "end_time", "input_path", "output_path",
                      "environment_variables", "default_parameters", "exception")


def strip_execution_metadata(nb: dict) -> dict:
    """The notebook without timestamps, durations and paths of the run that executed it.

    Papermill gives its injected-parameters cell a random id at every run; a fixed one keeps reruns equal.
    """
    for cell in nb.get("cells", []):
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell["id"] = "injected-parameters"
        for key in _CELL_RUN_KEYS:
            cell.get("metadata", {}).pop(key, None)
    for key in _NOTEBOOK_RUN_KEYS:
        nb.get("metadata", {}).get("papermill", {}).pop(key, None)
    return nb


def _keep_outputs_only(executed: Path, target: Path) -> None:
    """Replace ``target`` by the executed copy, minus per-run metadata; untouched if nothing changed."""
    import nbformat

    nb = strip_execution_metadata(json.loads(executed.read_text(encoding="utf-8")))
    text = nbformat.writes(nbformat.from_dict(nb)) + "\n"
    if target.is_file() and target.read_text(encoding="utf-8") == text:
        executed.unlink()
        return
    executed.write_text(text, encoding="utf-8")
    os.replace(executed, target)


def reproduce(profile: str = "quick", skip_execute: bool = False, root: Path = ROOT) -> Path:
    from ..notebook import PROFILES, check_choice

    check_choice("profile", profile, PROFILES)
    root = Path(root)
    write_toc(root)
    chapters = toc_chapters(root)
    if not chapters:
        raise BookError("no chapter notebooks found in notebooks/")
    print(f"{len(chapters)} chapter(s) in _toc.yml: {', '.join(nb.name for nb in chapters)}", flush=True)
    if not skip_execute:
        os.environ[numerics.ENV_FLAG] = "1"  # every chapter's kernel inherits the pinned numerics
        execute_chapters(chapters, profile, root)
    generate_pages(root, strict=True)
    print("claims and reproducibility pages regenerated (strict)", flush=True)
    print("building the book: jupyter-book build " + " ".join(STRICT_BUILD) + " .", flush=True)
    index, seconds = build_book(root, strict_pages=True)
    print(f"book built in {seconds:.0f} s. Open {index.relative_to(root)} "
          f"(file://{index}) in a browser.", flush=True)
    return index
