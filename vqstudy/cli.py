"""Command line: ``vqstudy demo|train|config|diagnose|sweep|reproduce|book``, the package's top layer.

Every subcommand calls the same public functions as the notebooks and is
registered here, in :data:`SUBCOMMANDS`; no module imports this one. Invalid
arguments stop before any work, with a message naming the argument; outputs
are written atomically.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from . import book, sweep
from .chapters import real_images
from .config import RunConfig, positive_int, seed_int
from .io import read_json, write_atomic


def parse_override(text: str) -> tuple[str, str, object]:
    """``section.field=value`` with value parsed as JSON when it can be (numbers, true, null)."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ValueError(f"invalid --set {text!r}: expected section.field=value, e.g. train.steps=500")
    key, raw = text.split("=", 1)
    section, name = key.split(".", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return section, name, value


def apply_overrides(config: RunConfig, overrides: Sequence[str]) -> RunConfig:
    changes: dict[str, dict] = {}
    for text in overrides:
        section, name, value = parse_override(text)
        changes.setdefault(section, {})[name] = value
    return config.replace(**changes) if changes else config


# --- demo ---------------------------------------------------------------------------------------

def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=positive_int, default=2000, help="optimizer steps per run (default 2000)")
    p.add_argument("--seeds", type=seed_int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    p.add_argument("--codebook-size", type=positive_int, default=64, help="K (default 64)")
    p.add_argument("--json", metavar="PATH", help="also write every run's result to this JSON file")


def _demo(args: argparse.Namespace) -> int:
    """Train collapsing and healthy runs on the synthetic mixture and print their diagnostics."""
    from .tables import results_frame, summary_table
    from .train import train

    base = RunConfig().replace(train={"steps": args.steps, "eval_every": max(args.steps // 4, 1)},
                               quantizer={"codebook_size": args.codebook_size})
    conditions = {
        "joint, normal(1e-3) init": base.replace(quantizer={"init": "normal", "init_scale": 1e-3}),
        "joint, k-means on untrained encoder": base,
        "deferred (k-means on trained encoder)": base.replace(
            train={"schedule": "deferred", "warmup_steps": args.steps // 2}),
    }
    results, labels = [], []
    print(f"Synthetic mixture: {base.data.n_clusters} clusters in {base.data.dim}-D, K={args.codebook_size}, "
          f"{args.steps} steps, seeds {args.seeds}", flush=True)
    for label, cfg in conditions.items():
        for seed in args.seeds:
            results.append(train(cfg.replace(train={"seed": seed})))
            labels.append(label)
    table = summary_table(results_frame(results, labels))
    import pandas as pd
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.T.to_string())
    if args.json:
        write_atomic(args.json, json.dumps([r.to_dict() for r in results], sort_keys=True))
        print(f"wrote {args.json}")
    return 0


# --- train --------------------------------------------------------------------------------------

def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="run config JSON (default: the package defaults)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override one field, e.g. --set quantizer.codebook_size=128 (repeatable)")
    p.add_argument("--out", metavar="PATH", help="write the result JSON here")


def _train(args: argparse.Namespace) -> int:
    """Train one run from a config file and print its final diagnostics."""
    from .diagnostics import scalar_metrics
    from .train import train

    config = RunConfig.from_dict(read_json(args.config, "config file")) if args.config else RunConfig()
    config = apply_overrides(config, args.set)
    result = train(config)
    print(f"status: {result.status}" + (f" ({result.reason})" if result.reason else ""))
    for key, value in scalar_metrics(result.final).items():
        print(f"{key:28s} {value:.6g}")
    if args.out:
        write_atomic(args.out, result.to_json())
        print(f"wrote {args.out}")
    return 0 if result.status == "ok" else 1


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", help="override one field")


def _config(args: argparse.Namespace) -> int:
    """Print the default run config (with overrides) as JSON: a starting point for ``vqstudy train``."""
    print(json.dumps(apply_overrides(RunConfig(), args.set).to_dict(), indent=2, sort_keys=True))
    return 0


# --- diagnose -----------------------------------------------------------------------------------

def _diagnose_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("codebook", help="codebook: .pt/.pth state dict (vqstudy or vector-quantize-pytorch), .npy, "
                                    ".safetensors")
    p.add_argument("--embeddings", metavar="NPY", help="encoder outputs (N, D), memory-mapped and streamed")
    p.add_argument("--indices", metavar="NPY", help="code of each embedding (default: the nearest code)")
    p.add_argument("--labels", metavar="NPY", help="a class per embedding (mode entropy, cluster separation)")
    p.add_argument("--key", help="state-dict key (or key prefix) of the codebook when there are several")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.add_argument("--report", metavar="DIR", help="also write a self-contained HTML page DIR/index.html")
    p.add_argument("--chunk-rows", type=positive_int, help="embeddings per chunk (default: from K, ~128 MB of distances)")


def _diagnose(args: argparse.Namespace) -> int:
    """Collapse report (tokens and embeddings) for a saved tokenizer: table, verdicts, --json, --report."""
    from .report import run
    print(run(args.codebook, args.embeddings, args.indices, args.labels, args.key, args.json, args.report,
              args.chunk_rows, write=write_atomic))
    return 0


# every subcommand: name -> (argument builder, handler returning the exit code)
SUBCOMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "demo": (_demo_args, _demo),
    "train": (_train_args, _train),
    "config": (_config_args, _config),
    "diagnose": (_diagnose_args, _diagnose),
    "sweep": (sweep.add_arguments, sweep.command),
    "realimages": (real_images.add_arguments, real_images.command),
    "reproduce": (book._reproduce_args, book._reproduce),
    "book": (book._book_args, book._book),
}

# One example per subcommand, shown under its --help (``vqstudy COMMAND --help``).
EXAMPLES: dict[str, str] = {
    "demo": "vqstudy demo --steps 2000 --seeds 0 1 2",
    "train": "vqstudy config > run.json\n"
             "  vqstudy train run.json --set train.schedule=deferred --set train.warmup_steps=1000 --out result.json",
    "config": "vqstudy config --set quantizer.codebook_size=128 > run.json",
    "diagnose": "vqstudy diagnose codebook.pt --embeddings z.npy --json report.json --report report/",
    "sweep": "vqstudy sweep grid.yaml --out runs/my-sweep",
    "realimages": "vqstudy realimages --workers 2",
    "reproduce": "vqstudy reproduce --profile quick",
    "book": "vqstudy book",
}


def command_transcript(argv: list[str], cwd: str | Path, save_to: str | Path | None = None) -> str:
    """Run ``vqstudy ARGV`` in ``cwd`` (so the printed paths are relative) and return ``$ command`` + its output.

    With ``save_to``, also write the transcript there (the how-to page includes chapter 7's).
    """
    import contextlib
    import os
    import shlex

    buf = io.StringIO()
    before = Path.cwd()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(buf):
            code = main(list(argv))
    finally:
        os.chdir(before)
    if code != 0:
        raise RuntimeError(f"vqstudy {shlex.join(argv)} exited with {code}")
    text = f"$ vqstudy {shlex.join(argv)}\n{buf.getvalue()}"
    if save_to is not None:
        write_atomic(save_to, text)
    return text


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="vqstudy", description="Representation collapse in vector quantization: train, diagnose, sweep, "
                                    "and rebuild the book.",
        epilog="example: vqstudy demo --steps 2000 --seeds 0\nrun `vqstudy COMMAND --help` for each command",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (add_arguments, handler) in SUBCOMMANDS.items():
        summary = (handler.__doc__ or "").strip().split("\n")[0]
        example = EXAMPLES.get(name)
        sp = sub.add_parser(name, help=summary, description=summary,
                            epilog=f"example:\n  {example}" if example else None,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(sp)
        sp.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `vqstudy`: show what it can do
        parser.print_help()
        return 0
    try:
        return args.handler(args)
    except ValueError as exc:
        print(f"vqstudy {args.command}: error: {exc}", file=sys.stderr)
        return 2



if __name__ == "__main__":
    sys.exit(main())
