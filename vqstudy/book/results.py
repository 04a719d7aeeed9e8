"""The chapters' results files, checked against the notebooks' stored runs.

Staleness is decided from content that survives a fresh clone, never from
file times: the results file must carry the profile of the notebook's stored
run, and every claim line that ``Claims.report()`` printed into the stored
outputs (verdict, statement, evidence with its measured numbers) must match
the results file exactly, in both directions. A notebook that prints
``results fingerprint: <hex>`` (see :func:`fingerprint`) is also checked
against the hash of the file's content.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..claims import MIN_SEEDS, VERDICTS
from .common import ROOT, BookError
from .paper import CLAIM_IDS
from .stored import _read_notebook, expected_results, has_outputs, notebook_title, stored_parameters, stored_stdout
from .toc import toc_chapters


CLAIM_LINE = re.compile(r"^(C\d+): (REPRODUCED|INCONCLUSIVE|NOT REPRODUCED|NOT TESTABLE HERE) - (.*)$")
FINGERPRINT_LINE = re.compile(r"results fingerprint:?\s*([0-9a-f]{12,64})")


def fingerprint(record: dict) -> str:
    """sha256 (first 16 hex digits) of what a run measured: chapter, parameters, claims, numbers.

    Environment and wall time are left out so that a deterministic re-run gives the same value
    (nbval compares it). A chapter may print ``results fingerprint: <this>`` after writing its file.
    """
    core = {k: record.get(k) for k in ("chapter", "parameters", "claims", "numbers")}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]


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
    path = results_dir / f"{chapter}.json"
    if not path.is_file():
        return out
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BookError(f"results file {path} is not valid JSON ({exc}): re-run the chapter") from None
    for key in ("chapter", "parameters", "claims"):
        if key not in record:
            raise BookError(f"results file {path} has no '{key}' field: re-run the chapter {notebook.name}")
    if record["chapter"] != chapter:
        raise BookError(f"results file {path} records chapter {record['chapter']!r}, expected {chapter!r}")
    for claim in record["claims"]:
        if claim.get("claim") not in CLAIM_IDS:
            raise BookError(f"results file {path} records an unknown claim {claim.get('claim')!r} "
                            f"(known: {', '.join(CLAIM_IDS)})")
        if claim.get("verdict") not in VERDICTS:
            raise BookError(f"results file {path}: claim {claim['claim']} has an invalid verdict "
                            f"{claim.get('verdict')!r} (allowed: {', '.join(VERDICTS)})")
        few = [t["key"] for t in claim.get("primary", []) if len(t["seeds"]) < MIN_SEEDS]
        if few:
            raise BookError(f"results file {path}: claim {claim['claim']} was judged on fewer than {MIN_SEEDS} "
                            f"seeds ({', '.join(few)}): the book's rule needs {MIN_SEEDS}")

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
            f"{results_dir / (c.chapter + '.json')} (chapter {c.notebook.name} is in the toc)" for c in missing)
            + ". Run `vqstudy reproduce` to execute the chapters.")
    return chapters
