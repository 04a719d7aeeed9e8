"""Command line: ``vqstudy demo``, ``vqstudy train``, ``vqstudy config``, ``vqstudy diagnose``.

Every subcommand calls the same public functions as the notebooks. Invalid
arguments stop before any work, with a message naming the argument; outputs
are written atomically.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from .config import RunConfig

SUBCOMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def subcommand(name: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register ``vqstudy NAME``: its argument builder and its handler (returns an exit code)."""
    def register(handler: Callable[[argparse.Namespace], int]):
        SUBCOMMANDS[name] = (add_arguments, handler)
        return handler
    return register


def write_atomic(path: str | Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename, so no reader sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide results from other users
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _int_at_least(low: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``, with a message naming what was expected."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value
    return parse


_positive = _int_at_least(1, "a positive integer")
_seed = _int_at_least(0, "a non-negative integer seed")


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
    p.add_argument("--steps", type=_positive, default=2000, help="optimizer steps per run (default 2000)")
    p.add_argument("--seeds", type=_seed, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    p.add_argument("--codebook-size", type=_positive, default=64, help="K (default 64)")
    p.add_argument("--json", metavar="PATH", help="also write every run's result to this JSON file")


@subcommand("demo", _demo_args)
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


@subcommand("train", _train_args)
def _train(args: argparse.Namespace) -> int:
    """Train one run from a config file and print its final diagnostics."""
    from .diagnostics import scalar_metrics
    from .train import train

    config = RunConfig()
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise ValueError(f"config file not found: {path}")
        config = RunConfig.from_json(path.read_text())
    config = apply_overrides(config, args.set)
    result = train(config)
    print(f"status: {result.status}" + (f" ({result.reason})" if result.reason else ""))
    for key, value in scalar_metrics(result.final).items():
        print(f"{key:28s} {value:.6g}")
    if args.out:
        write_atomic(args.out, result.to_json())
        print(f"wrote {args.out}")
    return 0 if result.status == "ok" else 1


@subcommand("config", lambda p: p.add_argument("--set", action="append", default=[],
                                                 metavar="SECTION.FIELD=VALUE", help="override one field"))
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
    p.add_argument("--chunk-rows", type=_positive, help="embeddings per chunk (default: from K, ~128 MB of distances)")


@subcommand("diagnose", _diagnose_args)
def _diagnose(args: argparse.Namespace) -> int:
    """Collapse report (tokens and embeddings) for a saved tokenizer: table, verdicts, --json, --report."""
    from .report import run
    print(run(args.codebook, args.embeddings, args.indices, args.labels, args.key, args.json, args.report,
              args.chunk_rows, write=write_atomic))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vqstudy", description="Representation collapse in vector quantization")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_arguments, handler) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=(handler.__doc__ or "").strip().split("\n")[0])
        add_arguments(sp)
        sp.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as exc:
        print(f"vqstudy {args.command}: error: {exc}", file=sys.stderr)
        return 2


from . import book as _book  # noqa: F401,E402  registers `vqstudy reproduce` and `vqstudy book`


from . import sweep as _sweep  # noqa: E402  after write_atomic/_positive exist; sweep imports them lazily
subcommand("sweep", _sweep.add_arguments)(_sweep.command)  # here, not in sweep.py: `python -m vqstudy.cli` sees it


if __name__ == "__main__":
    sys.exit(main())
