"""What the study's time is made of, for the reproducibility page: what the pinned numerics cost, and what
training ten seeds together saves and cannot save. Read from two benchmarks' stored results:

- ``results/pinning_cost.json``: ``benchmarks/bench_numerics.py --out results/pinning_cost.json``;
- ``results/seed_batching.json``: ``VQSTUDY_REPRODUCIBLE=1 benchmarks/bench_seedbatch.py --out
  results/seed_batching.json``.

A missing or malformed record leaves its part out (the page says how to make it).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PINNING_RECORD = "pinning_cost.json"
SEED_BATCHING_RECORD = "seed_batching.json"
PINNING_COMMAND = "python benchmarks/bench_numerics.py --out results/pinning_cost.json"
SEED_BATCHING_COMMAND = ("VQSTUDY_REPRODUCIBLE=1 python benchmarks/bench_seedbatch.py "
                         "--out results/seed_batching.json")
ONE_SEED = "one seed"
SECTION_LABEL = "reproducibility-cost"   # other pages link here: {ref}`...<reproducibility-cost>`
# bench_seedbatch.KERNEL_CLASSES, in order, and how the table names them
KERNEL_CLASSES = {"matrix products": "Matrix products (`mm`, `addmm`, `bmm`, `baddbmm`)",
                  "optimizer": "Optimizer (fused Adam)",
                  "other kernels": "Other kernels (element-wise, reductions, indexing, copies)",
                  "rest": "Rest (Python, the autograd engine, the run's set-up)"}
MKL_CNR_DOCS = ("https://www.intel.com/content/www/us/en/docs/onemkl/developer-reference-fortran/2026-0/"
                "getting-started-with-conditional-numerical.html")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _x(value: float) -> str:
    """A ratio, to the tenth: run-to-run spread is larger than that."""
    return f"{value:.1f}×"


def _s(value: float) -> str:
    """Seconds, three significant digits."""
    return f"{value:.3g}"


def pinning_lines(record: dict[str, Any]) -> list[str]:
    """One sentence per workload: its training time pinned and unpinned, and the ratio with its range."""
    parts = []
    for name, what in (("mlp", "a 1,500-step run of the MLP of chapters 1–4"),
                       ("conv", "a 300-step run of the image chapters' convolutional tokenizer, on the digits")):
        w = record.get(name)
        if not isinstance(w, dict):
            continue
        low, high = w["ratio_range"]
        parts.append(f"{what} takes {_s(w['pinned_s'])} s pinned against "
                     f"{_s(w['unpinned_s'])} s unpinned (**{_x(w['ratio_median'])}**, "
                     f"{_x(low)}–{_x(high)} over {record['rounds']} rounds)")
    if not parts:
        return []
    return [f"**What pinning costs.** Measured on {record.get('cpu_count', '?')} cores, alternating fresh "
            f"processes with and without the pins ({record.get('date', 'undated')}): " + "; ".join(parts) + ".",
            ""]


def seed_batching_lines(record: dict[str, Any]) -> list[str]:
    """The measured cost of S batched seeds against one, and where each arm's time goes."""
    kernels = record["kernel_seconds"]
    batched = next(name for name in kernels if name != ONE_SEED)
    one, many = kernels[ONE_SEED], kernels[batched]
    if set(one) != set(KERNEL_CLASSES) or set(many) != set(KERNEL_CLASSES):
        raise ValueError(f"kernel classes {sorted(one)} are not {list(KERNEL_CLASSES)}")
    seeds, one_total = record["seeds"], sum(one.values())
    rows = [f"| {label} | {_s(one[name])} | {_s(many[name])} | "
            f"{_x(many[name] / one[name]) if one[name] > 0 else '—'} |" for name, label in KERNEL_CLASSES.items()]
    rows.append(f"| **all** | **{_s(one_total)}** | **{_s(sum(many.values()))}** | "
                f"**{_x(sum(many.values()) / one_total)}** |")
    floor = many["matrix products"] / one_total
    return [
        f"**Seeds together.** {seeds} seeds of one configuration trained as one batched computation "
        f"(`vqstudy.seedbatch`, {record['steps']} steps of the chapters' MLP) cost **{_x(record['ratio'])}** "
        f"one seed ({_x(record['ratio_min'])}–{_x(record['ratio_max'])} over {record['rounds']} interleaved "
        f"rounds, {record.get('date', 'undated')}; pinned: {'yes' if record.get('pinned') else 'no'}). In the "
        f"profiled runs below, the matrix products do {seeds} times the arithmetic and take "
        f"{_x(many['matrix products'] / one['matrix products'])} as long, the other kernels "
        f"{_x(many['other kernels'] / one['other kernels'])}: batching shares what is paid per operation, not "
        f"the arithmetic. The matrix products of the {seeds} seeds alone take {_x(floor)} one seed's whole run: "
        f"with these kernels, no batching of this model brings {seeds} seeds below that.", "",
        f":::{{table}} Where the time of one seed and of {seeds} batched seeds goes (seconds, one profiled run "
        "each; the profiler slows a run a little). Each row is the operators' own time, nested ones excluded.",
        ":name: seed-batching-table", "",
        f"| Work | One seed, s | {seeds} seeds batched, s | Batched / one |", "|---|---|---|---|",
        *rows, ":::", ""]


def cost_section(root: Path) -> list[str]:
    """The reproducibility page's section on what the time is made of (empty without either record)."""
    results = Path(root) / "results"
    pinning, batching = _read(results / PINNING_RECORD), _read(results / SEED_BATCHING_RECORD)
    body: list[str] = []
    try:
        body += pinning_lines(pinning) if pinning else []
    except (KeyError, TypeError, ValueError):
        pass
    try:
        body += seed_batching_lines(batching) if batching else []
    except (KeyError, TypeError, ValueError, StopIteration, ZeroDivisionError):
        pass
    if not body:
        return []
    return [f"({SECTION_LABEL})=", "## What the time is made of", "",
            "Training runs at the speed the pinned numerics allow: PyTorch's matrix products run on MKL's "
            "portable `COMPATIBLE` (SSE2) branch — besides `AUTO`, the only branch MKL offers on non-Intel CPUs "
            f"([MKL's conditional numerical reproducibility]({MKL_CNR_DOCS})) — and its other kernels on "
            "ATen's portable `default` capability.", "", *body,
            f"*Rerun*: `{PINNING_COMMAND}` and `{SEED_BATCHING_COMMAND}` (each a few minutes), then rebuild "
            "the book.", ""]
