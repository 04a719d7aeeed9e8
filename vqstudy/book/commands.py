"""The command line's ``vqstudy reproduce`` and ``vqstudy book`` (registered by :mod:`vqstudy.cli`)."""
from __future__ import annotations

import argparse
import sys

from ..config import positive_int
from .build import build_book, reproduce
from .common import ROOT, BookError
from .pages import generate_pages
from .toc import write_toc


def _reproduce_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", choices=("quick", "full"), default="quick",
                   help="notebook parameter profile (default quick: minutes per chapter on 2 cores)")
    p.add_argument("--skip-execute", action="store_true",
                   help="do not run the notebooks; check their results, regenerate the pages, build")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="chapters executed at a time (default: one per two cores; they share one run store)")


def _reproduce(args: argparse.Namespace) -> int:
    """Execute every chapter (papermill), regenerate the claims pages strictly, build the book strictly."""
    try:
        reproduce(args.profile, args.skip_execute, jobs=args.jobs)
    except BookError as exc:
        print(f"vqstudy reproduce: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _book_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strict", action="store_true",
                   help="fail when a chapter in the toc has no results file (the main job's mode)")
    p.add_argument("--pages-only", action="store_true", help="regenerate _toc.yml and the pages, do not build")


def _book(args: argparse.Namespace) -> int:
    """Regenerate the toc and the claims/reproducibility pages, then build the book (no execution)."""
    try:
        write_toc(ROOT)
        changed = generate_pages(ROOT, strict=args.strict)
        print("pages: " + (", ".join(str(p.relative_to(ROOT)) for p in changed) or "unchanged"))
        if not args.pages_only:
            index, seconds = build_book(ROOT, strict_pages=args.strict)
            print(f"book built in {seconds:.0f} s: open {index.relative_to(ROOT)}")
    except BookError as exc:
        print(f"vqstudy book: error: {exc}", file=sys.stderr)
        return 1
    return 0
