"""A chapter's results file ``results/<chapter>.json``: its fields, and writing, reading and checking it.

One record per chapter: ``chapter`` (its id, the notebook's name), ``parameters`` (of the run),
``claims`` (one entry per judged claim, the fields of :class:`Verdict`), ``numbers`` (what the chapter
measured besides the claims), ``timings`` (speed measurements, only when the chapter took any),
``environment`` and ``wall_time_s``. The last three describe one execution rather than its numbers
(:data:`VOLATILE_FIELDS`): a rerun that reproduces the rest keeps the existing file, and so the tree,
unchanged. Whether a file is the one a notebook's stored run wrote is the book's question
(:mod:`vqstudy.book.results`); this module knows only the file.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping

from .claims import CLAIM_IDS, MIN_SEEDS, VERDICTS
from .io import write_atomic

FIELDS = ("chapter", "parameters", "claims", "numbers", "timings", "environment", "wall_time_s")
REQUIRED_FIELDS = ("chapter", "parameters", "claims")
# Fields of a results file that describe one execution rather than its numbers (timings: what a chapter
# measured about speed, e.g. chapter 8's cost per training step, which no two executions share).
VOLATILE_FIELDS = ("environment", "wall_time_s", "timings")
CONTENT_FIELDS = tuple(f for f in FIELDS if f not in VOLATILE_FIELDS)   # what a run measured
NOT_TESTABLE = "not testable here"


@dataclass
class Verdict:
    """One entry of a record's ``claims``: a claim, its verdict and what it was judged on."""
    claim: str
    statement: str
    verdict: str
    evidence: str
    numbers: dict[str, Any]
    primary: list[dict[str, Any]] = field(default_factory=list)   # each primary test: effect, interval, outcome
    stability: float | None = None                                 # share of seed resamples giving this verdict


CLAIM_FIELDS = tuple(f.name for f in fields(Verdict))


class ResultsError(ValueError):
    """A results file that is missing, not JSON or malformed; ``str()`` names the file (and the field)."""


def results_path(directory: str | Path, chapter: str) -> Path:
    return Path(directory) / f"{chapter}.json"


def build_record(chapter: str, parameters: dict[str, Any], claims: Iterable[Verdict], numbers: dict[str, Any],
                 environment: dict[str, Any], wall_time_s: float,
                 timings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of one execution (``timings`` left out when there are none); values must be JSON-safe."""
    return {
        "chapter": chapter,
        "parameters": parameters,
        "claims": [v.__dict__ for v in claims],
        "numbers": numbers,
        **({"timings": timings} if timings else {}),
        "environment": environment,
        "wall_time_s": wall_time_s,
    }


def _content(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in VOLATILE_FIELDS}


def same_results(path: Path, record: dict[str, Any]) -> bool:
    """Whether ``path`` already holds ``record`` up to its volatile (per-execution) fields."""
    try:
        old = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(old, dict) and _content(old) == _content(json.loads(json.dumps(record)))


def write_results(path: Path, record: dict[str, Any]) -> bool:
    """Write ``record`` to ``path`` atomically unless the file already holds it up to its volatile fields
    (then the file, with its record of when, where and how fast the numbers were first made, is kept).
    Returns whether the file was written."""
    if same_results(path, record):
        return False
    write_atomic(path, json.dumps(record, indent=1, sort_keys=True))
    return True


def read_results(path: Path) -> dict[str, Any]:
    """The record in ``path``, as stored (see :func:`check_record` for its structure)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"results file {path} does not exist: run the chapter") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"results file {path} is not valid JSON ({exc}): re-run the chapter") from None


def check_record(record: Any, path: Path, chapter: str | None = None) -> dict[str, Any]:
    """Raise :class:`ResultsError` naming ``path`` (and the field) unless ``record`` is a well-formed results
    record (of ``chapter`` when given): its fields, each claim entry's fields, a known claim, a verdict from
    :data:`vqstudy.claims.VERDICTS`, and at least ``MIN_SEEDS`` seeds per primary test of a tested claim.
    Returns ``record``."""
    if not isinstance(record, dict):
        raise ResultsError(f"results file {path} does not hold a JSON object: re-run the chapter")
    for key in REQUIRED_FIELDS:
        if key not in record:
            raise ResultsError(f"results file {path} has no '{key}' field: re-run the chapter "
                               f"{chapter or record.get('chapter', '')}".rstrip())
    if chapter is not None and record["chapter"] != chapter:
        raise ResultsError(f"results file {path} records chapter {record['chapter']!r}, expected {chapter!r}")
    if not isinstance(record["claims"], list):
        raise ResultsError(f"results file {path}: its 'claims' field is not a list")
    for claim in record["claims"]:
        _check_claim(claim, path)
    return record


def _check_claim(claim: Any, path: Path) -> None:
    if not isinstance(claim, dict):
        raise ResultsError(f"results file {path}: a 'claims' entry is not a JSON object: {claim!r}")
    if claim.get("claim") not in CLAIM_IDS:
        raise ResultsError(f"results file {path} records an unknown claim {claim.get('claim')!r} "
                           f"(known: {', '.join(CLAIM_IDS)})")
    missing = [key for key in CLAIM_FIELDS if key not in claim]
    if missing:
        raise ResultsError(f"results file {path}: claim {claim['claim']} has no '{missing[0]}' field")
    if claim["verdict"] not in VERDICTS:
        raise ResultsError(f"results file {path}: claim {claim['claim']} has an invalid verdict "
                           f"{claim['verdict']!r} (allowed: {', '.join(VERDICTS)})")
    if claim["verdict"] == NOT_TESTABLE:
        return
    tests = claim["primary"]
    for test in tests if isinstance(tests, list) else [None]:
        if not isinstance(test, dict) or "key" not in test or "seeds" not in test:
            raise ResultsError(f"results file {path}: claim {claim['claim']} has a primary test without "
                               f"its 'key' and 'seeds' fields")
    few = [t["key"] for t in tests if len(t["seeds"]) < MIN_SEEDS]
    if few:
        raise ResultsError(f"results file {path}: claim {claim['claim']} was judged on fewer than {MIN_SEEDS} "
                           f"seeds ({', '.join(few)}): the book's rule needs {MIN_SEEDS}")


def load_record(path: Path, chapter: str | None = None) -> dict[str, Any]:
    """Read ``path`` and check its structure (:func:`read_results`, :func:`check_record`)."""
    return check_record(read_results(path), path, chapter)


def fingerprint(record: dict) -> str:
    """sha256 (first 16 hex digits) of what a run measured: chapter, parameters, claims, numbers.

    Environment and wall time are left out so that a deterministic re-run gives the same value
    (nbval compares it). A chapter may print ``results fingerprint: <this>`` after writing its file.
    """
    core = {k: record.get(k) for k in CONTENT_FIELDS}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]
