"""The reproducibility page's account of what the time is made of, from the two benchmarks' records."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from vqstudy.book.cost import PINNING_RECORD, SEED_BATCHING_RECORD, cost_section

PINNING = {"rounds": 5, "cpu_count": 2, "date": "2026-12-06",
           "mlp": {"pinned_s": 6.04, "unpinned_s": 2.87, "ratio_median": 2.11, "ratio_range": [2.02, 2.2]},
           "conv": {"pinned_s": 3.1, "unpinned_s": 1.6, "ratio_median": 1.94, "ratio_range": [1.9, 2.01]}}
ONE = {"matrix products": 0.6, "optimizer": 0.1, "other kernels": 0.5, "rest": 0.3}
BATCHED = {"matrix products": 6.3, "optimizer": 1.0, "other kernels": 4.6, "rest": 0.9}
BATCHING = {"seeds": 10, "steps": 300, "rounds": 5, "pinned": True, "date": "2026-12-06", "ratio": 8.2,
            "ratio_min": 7.9, "ratio_max": 8.5, "kernel_seconds": {"one seed": ONE, "10 seeds batched": BATCHED}}


def _root(tmp_path: Path, pinning=None, batching=None) -> Path:
    (tmp_path / "results").mkdir()
    for name, record in ((PINNING_RECORD, pinning), (SEED_BATCHING_RECORD, batching)):
        if record is not None:
            text = record if isinstance(record, str) else json.dumps(record)
            (tmp_path / "results" / name).write_text(text)
    return tmp_path


def test_the_section_states_the_measured_costs_and_the_bound_batching_cannot_pass(tmp_path):
    text = "\n".join(cost_section(_root(tmp_path, PINNING, BATCHING)))
    assert "6.04 s pinned against 2.87 s unpinned (**2.1×**, 2.0×–2.2× over 5 rounds)" in text
    assert "cost **8.2×** one seed (7.9×–8.5× over 5 interleaved rounds" in text
    assert "take 10.5× as long, the other kernels 9.2×" in text
    assert "alone take 4.2× one seed's whole run" in text                       # 6.3 / 1.5
    rows = [line for line in text.splitlines() if line.startswith("| ") and "×" in line]
    assert [r.split(" |")[0] for r in rows] == [
        "| Matrix products (`mm`, `addmm`, `bmm`, `baddbmm`)", "| Optimizer (fused Adam)",
        "| Other kernels (element-wise, reductions, indexing, copies)",
        "| Rest (Python, the autograd engine, the run's set-up)", "| **all**"]
    assert rows[-1] == "| **all** | **1.5** | **12.8** | **8.5×** |"
    assert "nan" not in text.lower()


@pytest.mark.parametrize("pinning, batching, present", [
    (None, None, []),
    (PINNING, None, ["What pinning costs"]),
    (None, BATCHING, ["Seeds together"]),
    ("{", {**BATCHING, "kernel_seconds": {"one seed": ONE, "10 seeds batched": {"matrix products": 1.0}}}, []),
])
def test_a_missing_or_malformed_record_leaves_its_part_out(tmp_path, pinning, batching, present):
    text = "\n".join(cost_section(_root(tmp_path, pinning, batching)))
    for part in ("What pinning costs", "Seeds together"):
        assert (part in text) == (part in present)
    assert (text == "") == (not present)


def test_the_reproducibility_page_carries_the_section(tmp_path):
    from vqstudy import book

    root = _root(tmp_path, PINNING, BATCHING)
    assert "## What the time is made of" in book.reproducibility_page([], root)
