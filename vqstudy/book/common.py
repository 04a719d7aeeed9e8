"""What every part of the book shares: the repository root, the build's strict-pages switch, the
main job's record, :class:`BookError`, and writing a generated file only when its content changes.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..io import write_atomic


ROOT = Path(__file__).resolve().parents[2]   # the repository: vqstudy/book/common.py -> ../..
STRICT_ENV = "VQSTUDY_BOOK_STRICT"
MAIN_JOB_RECORD = "main_job.json"   # in results/: how long the main job took to execute every chapter


class BookError(RuntimeError):
    """A results file is missing, stale or malformed, or the book cannot be built."""


def _write_bytes_if_changed(path: Path, data: bytes) -> bool:
    path = Path(path)
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def _write_if_changed(path: Path, text: str) -> bool:
    path = Path(path)
    if path.is_file() and path.read_text() == text:
        return False
    write_atomic(path, text)
    return True
