"""Render results/performance.json into book/performance.md and book/figures/performance.png.

The command line of :mod:`vqstudy.book.performance`, which builds the page and the figure.
Called by bench_quantizer.py after each run; also runnable alone to re-render
without re-measuring: ``python benchmarks/perf_report.py [results/performance.json]``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from vqstudy.book.performance import page, render  # noqa: E402,F401  (bench_quantizer.py calls render)

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    source = Path(argv[0]) if argv else ROOT / "results" / "performance.json"
    render(json.loads(source.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
