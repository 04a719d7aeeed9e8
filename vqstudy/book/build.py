"""Executing the chapters (papermill), building the book strictly, and the main job that does both."""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from .. import numerics
from .common import MAIN_JOB_RECORD, ROOT, STRICT_ENV, BookError
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


@contextlib.contextmanager
def shared_run_store() -> Iterator[Path]:
    """A run store that every chapter executed meanwhile shares (``$VQSTUDY_RUN_STORE``), removed afterwards.

    Chapters read some of the same runs (chapter 4's k-means and deferred arms are chapter 2's); with one
    store, the first chapter that needs a run trains it and the others read its record. A run is a pure
    function of its config, so the stored outputs do not depend on which chapter trained it. An
    existing ``$VQSTUDY_RUN_STORE`` is kept (the caller owns it).
    """
    from ..sweep import RUN_STORE_ENV, shared_store

    existing = shared_store()
    if existing is not None:
        yield Path(existing)
        return
    folder = tempfile.mkdtemp(prefix="vqstudy-runs-")
    os.environ[RUN_STORE_ENV] = folder   # the chapters' kernels inherit it
    try:
        yield Path(folder)
    finally:
        os.environ.pop(RUN_STORE_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def _check_jobs(jobs: int) -> None:
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"invalid jobs={jobs!r}: chapters at a time must be an integer >= 1")


def execute_chapters(chapters: list[Path], profile: str, root: Path = ROOT, jobs: int = 1) -> float:
    """Run each chapter with papermill (kernel python3, cwd notebooks/); stop at the first failure.

    A chapter is executed into a temporary copy that replaces the notebook only on success, so a
    failure never leaves a half-run notebook behind (the failed copy is kept under _build/failed/).
    Papermill replaces an existing ``injected-parameters`` cell, so reruns do not pile them up.
    The chapters share one run store (:func:`shared_run_store`) for as long as they run.

    ``jobs`` chapters run at a time, the longest (by its stored run) first, for machines with more
    cores than one chapter's sweep workers use (:func:`default_chapters_at_a_time`). After a failure
    no further chapter starts; those running finish. Returns the wall time in seconds.
    """
    _check_jobs(jobs)
    from tqdm.auto import tqdm

    root, started = Path(root), time.perf_counter()
    with shared_run_store(), tqdm(total=len(chapters), desc="chapters", unit="chapter", file=sys.stdout) as bar:
        for nb, seconds, error in _outcomes(chapters, profile, root, jobs):
            if error is not None:
                raise BookError(error)
            bar.update(1)
            tqdm.write(f"{nb.name}: done in {seconds:.0f} s", file=sys.stdout)
    return time.perf_counter() - started


def _outcomes(chapters: list[Path], profile: str, root: Path,
              jobs: int) -> Iterator[tuple[Path, float, str | None]]:
    """(chapter, seconds, error or None) as each chapter finishes; closing it cancels the chapters not
    yet started and waits for the running ones."""
    if jobs == 1:
        for nb in chapters:
            yield (nb, *execute_chapter(nb, profile, root, progress=True))
        return
    pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {pool.submit(execute_chapter, nb, profile, root, False): nb
                   for nb in longest_first(chapters, root)}
        for future in cf.as_completed(futures):
            yield (futures[future], *future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def longest_first(chapters: list[Path], root: Path) -> list[Path]:
    """The chapters by the wall time of their stored run, longest first; one without a results file first."""
    def stored_seconds(nb: Path) -> float:
        try:
            return float(json.loads((root / "results" / f"{nb.stem}.json").read_text())["wall_time_s"])
        except (OSError, ValueError, KeyError, TypeError):
            return float("inf")
    return sorted(chapters, key=stored_seconds, reverse=True)


def execute_chapter(nb: Path, profile: str, root: Path, progress: bool = True) -> tuple[float, str | None]:
    """Execute one chapter in place: (seconds, None) on success, (seconds, what failed) on failure."""
    import papermill as pm

    tmp = nb.with_name(f".{nb.stem}.running.ipynb")
    started = time.perf_counter()
    try:
        pm.execute_notebook(str(nb), str(tmp), parameters={"profile": profile}, kernel_name="python3",
                            cwd=str(root / "notebooks"), progress_bar=progress, log_output=False)
    except Exception as exc:  # papermill raises PapermillExecutionError with the failing cell
        failed = root / "_build" / "failed" / nb.name
        failed.parent.mkdir(parents=True, exist_ok=True)
        if tmp.is_file():
            os.replace(tmp, failed)
        first = str(exc).strip().splitlines()
        return time.perf_counter() - started, (
            f"chapter {nb.name} failed after {time.perf_counter() - started:.0f} s: "
            f"{first[-1] if first else type(exc).__name__}. The executed copy is {failed}; the committed "
            "notebook is unchanged.")
    _keep_outputs_only(tmp, nb)
    return time.perf_counter() - started, None


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


# Cells whose outputs differ between executions by design (measured speeds): nbval does not compare them.
MEASURED_OUTPUT_TAG = "nbval-ignore-output"
# Parts of an output that differ between executions by design, and what nbval compares in their place
# (``pytest --nbval-sanitize-with tests/nbval_sanitize.cfg``; that file is :func:`nbval_sanitize_config`).
SANITIZE_PATTERNS: dict[str, tuple[str, str]] = {
    "object addresses": (r"at 0x[0-9a-f]+", "at 0xADDRESS"),
    "wall times": (r"\d+(\.\d+)? ?s(econds)? wall", "TIME wall"),
}


def nbval_sanitize_config() -> str:
    """:data:`SANITIZE_PATTERNS` as the configuration file nbval reads."""
    return "\n".join(f"[{name}]\nregex: {regex}\nreplace: {replace}\n"
                     for name, (regex, replace) in SANITIZE_PATTERNS.items())


def _sanitized(value: Any) -> Any:
    """``value`` (an output or a part of one) with every :data:`SANITIZE_PATTERNS` match replaced."""
    if isinstance(value, str):
        for regex, replace in SANITIZE_PATTERNS.values():
            value = re.sub(regex, replace, value)
        return value
    if isinstance(value, list):
        return [_sanitized(v) for v in value]
    if isinstance(value, dict):
        return {k: _sanitized(v) for k, v in value.items()}
    return value


def as_nbval_compares(nb: dict) -> dict:
    """The notebook without what differs between executions by design, taken out as nbval takes it out: the
    outputs of its :data:`MEASURED_OUTPUT_TAG` cells left out, the others sanitized with
    :data:`SANITIZE_PATTERNS`. (Figures stay in: nbval does not compare them, but a changed figure is kept.)"""
    cells = [{k: v for k, v in c.items() if k != "outputs"}
             if MEASURED_OUTPUT_TAG in c.get("metadata", {}).get("tags", [])
             else {**c, "outputs": _sanitized(c["outputs"])} if "outputs" in c else c
             for c in nb.get("cells", [])]
    return {**nb, "cells": cells}


def _keep_outputs_only(executed: Path, target: Path) -> None:
    """Replace ``target`` by the executed copy, minus per-run metadata; untouched if nothing changed but
    the measured outputs (like a results file's timings, they are kept from the run that made the numbers,
    so rerunning the main job leaves the tree as it was)."""
    import nbformat

    nb = strip_execution_metadata(json.loads(executed.read_text(encoding="utf-8")))
    text = nbformat.writes(nbformat.from_dict(nb)) + "\n"
    stored = target.read_text(encoding="utf-8") if target.is_file() else None
    if stored is not None and (stored == text or as_nbval_compares(json.loads(stored))
                               == as_nbval_compares(json.loads(text))):
        executed.unlink()
        return
    executed.write_text(text, encoding="utf-8")
    os.replace(executed, target)


def _results_texts(chapters: list[Path], root: Path) -> list[str | None]:
    paths = [root / "results" / f"{nb.stem}.json" for nb in chapters]
    return [p.read_text(encoding="utf-8") if p.is_file() else None for p in paths]


def record_main_job(root: Path, profile: str, jobs: int, chapters: list[Path], seconds: float,
                    renewed: bool) -> bool:
    """Write ``results/main_job.json`` (how long executing every chapter took, and how) when a chapter's
    results file was rewritten by this job or the record is of another profile or set of chapters;
    like a chapter's wall time, the job's is kept from the job that produced the stored numbers, so a
    rerun that reproduces them leaves the tree as it was. Returns whether it was written."""
    from ..io import write_atomic
    from ..numerics import cpu_model

    path = root / "results" / MAIN_JOB_RECORD
    setup = {"profile": profile, "chapters": [nb.stem for nb in chapters]}
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    if not renewed and isinstance(old, dict) and {k: old.get(k) for k in setup} == setup:
        return False
    record = {**setup, "chapters_at_a_time": jobs, "wall_time_s": round(seconds, 1), "cpu_model": cpu_model(),
              "cores": os.cpu_count()}
    write_atomic(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return True


def default_chapters_at_a_time() -> int:
    """One chapter per two cores: a chapter's sweeps train on min(2, cores) worker processes.

    Measured on an idle 2-core machine, the quick profile's nine chapters took 25.7 min two at a time
    (sharing runs) and 26.1 min one at a time (each chapter training all its runs): the chapters keep
    both cores busy most of the time, so a second chapter only competes for them. More cores leave room
    for more chapters.
    """
    return max(1, (os.cpu_count() or 1) // 2)


def reproduce(profile: str = "quick", skip_execute: bool = False, root: Path = ROOT,
              jobs: int | None = None) -> Path:
    from ..notebook import PROFILES, check_choice

    check_choice("profile", profile, PROFILES)
    jobs = default_chapters_at_a_time() if jobs is None else jobs
    _check_jobs(jobs)
    root = Path(root)
    write_toc(root)
    chapters = toc_chapters(root)
    if not chapters:
        raise BookError("no chapter notebooks found in notebooks/")
    print(f"{len(chapters)} chapter(s) in _toc.yml: {', '.join(nb.name for nb in chapters)}", flush=True)
    if not skip_execute:
        os.environ[numerics.ENV_FLAG] = "1"  # every chapter's kernel inherits the pinned numerics
        before = _results_texts(chapters, root)
        seconds = execute_chapters(chapters, profile, root, jobs)
        print(f"{len(chapters)} chapter(s) executed in {seconds / 60:.1f} min ({jobs} at a time)", flush=True)
        record_main_job(root, profile, jobs, chapters, seconds,
                        renewed=_results_texts(chapters, root) != before)
    generate_pages(root, strict=True)
    print("claims and reproducibility pages regenerated (strict)", flush=True)
    print("building the book: jupyter-book build " + " ".join(STRICT_BUILD) + " .", flush=True)
    index, seconds = build_book(root, strict_pages=True)
    print(f"book built in {seconds:.0f} s. Open {index.relative_to(root)} "
          f"(file://{index}) in a browser.", flush=True)
    return index
