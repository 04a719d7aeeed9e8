"""The chapters' results files, checked against the notebooks' stored runs.

Staleness is decided from content that survives a fresh clone, never from
file times: the results file must carry the profile of the notebook's stored
run, and every claim line that ``Claims.report()`` printed into the stored
outputs (verdict, statement, evidence with its measured numbers) must match
the results file exactly, in both directions. A notebook that prints
``results fingerprint: <hex>`` (see :func:`fingerprint`) is also checked
against the hash of the file's content. The file's format and the checks of its
structure are :mod:`vqstudy.results`'s.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..results import ResultsError, fingerprint, load_record, results_path
from .common import ROOT, BookError
from .stored import _read_notebook, expected_results, has_outputs, notebook_title, stored_parameters, stored_stdout
from .toc import toc_chapters


CLAIM_LINE = re.compile(r"^(C\d+): (REPRODUCED|INCONCLUSIVE|NOT REPRODUCED|NOT TESTABLE HERE) - (.*)$")
FINGERPRINT_LINE = re.compile(r"results fingerprint:?\s*([0-9a-f]{12,64})")


@dataclass
class ChapterResults:
    notebook: Path
    title: str
    chapter: str | None                   # results id; None: the chapter records no claims
    record: dict | None = None            # None: no results file yet (non-strict mode only)
    problems: list[str] = field(default_factory=list)

    @property
    def docname(self) -> str:
        return f"notebooks/{self.notebook.stem}"


def check_results(notebook: Path, results_dir: Path) -> ChapterResults:
    """Load ``results/<chapter>.json`` and check it is the one the notebook's stored run wrote.

    Raises :class:`BookError` when the file is malformed or stale; a missing file is returned with
    ``record=None`` (the caller decides whether that is an error).
    """
    notebook, results_dir = Path(notebook), Path(results_dir)
    nb = _read_notebook(notebook)
    chapter = expected_results(notebook)
    out = ChapterResults(notebook, notebook_title(notebook), chapter)
    if chapter is None:
        return out
    if chapter != notebook.stem:
        raise BookError(f"{notebook.name} writes results for Claims({chapter!r}) but its results file must be "
                        f"named after the notebook: use Claims({notebook.stem!r})")
    path = results_path(results_dir, chapter)
    if not path.is_file():
        return out
    try:
        record = load_record(path, chapter)
    except ResultsError as exc:
        raise BookError(str(exc)) from None

    stale = _staleness(nb, record)
    if stale:
        raise BookError(f"results file {path} is stale: it was not written by the run stored in "
                        f"{notebook} ({'; '.join(stale)}). Re-run the chapter (`vqstudy reproduce`, or "
                        f"papermill) and commit the notebook and its results file together.")
    out.record = record
    return out


def _staleness(nb: dict, record: dict) -> list[str]:
    if not has_outputs(nb):
        return ["the notebook has no stored outputs"]
    problems = []
    run_profile = stored_parameters(nb).get("profile")
    file_profile = record.get("parameters", {}).get("profile")
    if run_profile is not None and file_profile is not None and run_profile != file_profile:
        problems.append(f"the notebook's stored run used profile={run_profile!r}, the file has "
                        f"profile={file_profile!r}")
    stdout = stored_stdout(nb)
    lines = [line.rstrip() for line in stdout.splitlines()]
    printed = {(m.group(1), m.group(2).lower(), m.group(3)) for m in map(CLAIM_LINE.match, lines) if m}
    recorded = {(c["claim"], c["verdict"], c["statement"]) for c in record["claims"]}
    for claim, verdict, statement in sorted(recorded - printed):
        problems.append(f"{claim} '{verdict}' is not what the notebook printed")
    for claim, verdict, statement in sorted(printed - recorded):
        problems.append(f"the notebook printed {claim} '{verdict}' but the file does not record it")
    evidence_lines = {line.strip() for line in lines if line.strip().startswith("evidence:")}
    for c in record["claims"]:
        if f"evidence: {c.get('evidence', '')}".strip() not in evidence_lines and printed:
            problems.append(f"{c['claim']}: the evidence (measured numbers) differs from the notebook's output")
    match = FINGERPRINT_LINE.search(stdout)
    if match and not fingerprint(record).startswith(match.group(1)[:16]):
        problems.append(f"content fingerprint {fingerprint(record)} differs from the notebook's "
                        f"{match.group(1)}")
    return problems


def load_results(root: Path = ROOT, strict: bool = False, results_dir: Path | None = None,
                 notebooks: Iterable[Path] | None = None) -> list[ChapterResults]:
    """Check the results file of every chapter listed in the toc (or of ``notebooks``).

    Stale or malformed files always raise. A missing file raises in ``strict`` mode (the main job);
    otherwise its chapter's claims show as "not yet tested".
    """
    root = Path(root)
    results_dir = Path(results_dir) if results_dir is not None else root / "results"
    chapters = [check_results(nb, results_dir)
                for nb in (notebooks if notebooks is not None else toc_chapters(root))]
    missing = [c for c in chapters if c.chapter is not None and c.record is None]
    if strict and missing:
        raise BookError("missing results file(s): " + ", ".join(
            f"{results_path(results_dir, c.chapter)} (chapter {c.notebook.name} is in the toc)" for c in missing)
            + ". Run `vqstudy reproduce` to execute the chapters.")
    return chapters
