"""Turn run results into tidy tables: one row per run, then mean and interval per condition."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .diagnostics import scalar_metrics

DEMO_METRICS = ("utilization", "perplexity", "codebook_cosine_spread", "codebook_euclidean_spread",
                "mode_entropy", "clusters_covered", "quantization_error", "recon_error",
                "embed_effective_dim")


def results_frame(results: Iterable, condition: str | Sequence[str] | None = None) -> pd.DataFrame:
    """One row per run: its condition label(s), seed, status and final scalar metrics."""
    rows = []
    conds = [condition] if isinstance(condition, str) or condition is None else list(condition)
    results = list(results)
    if len(conds) == 1:
        conds = conds * len(results)
    if len(conds) != len(results):
        raise ValueError(f"got {len(conds)} condition labels for {len(results)} results")
    for cond, res in zip(conds, results):
        row = {"condition": cond, "seed": res.config.train.seed, "status": res.status}
        row.update(scalar_metrics(res.final))
        rows.append(row)
    return pd.DataFrame(rows)


def interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of a Student-t confidence interval (0 for one value)."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, 0.0
    half = float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, half


def summary_table(df: pd.DataFrame, by: str | list[str] = "condition",
                  metrics: Sequence[str] = DEMO_METRICS, digits: int = 3) -> pd.DataFrame:
    """Mean ± 95% interval of each metric per group, as strings rounded to ``digits`` significant digits."""
    missing = [m for m in metrics if m not in df.columns]
    if missing:
        raise ValueError(f"unknown metric(s) {missing}; available: {sorted(df.columns)}")
    out = {}
    for key, group in df.groupby(by, sort=False):
        cells = {}
        for m in metrics:
            mean, half = interval(group[m].to_numpy())
            cells[m] = f"{mean:.{digits}g} ± {half:.2g}" if half else f"{mean:.{digits}g}"
        cells["runs"] = len(group)
        out[key] = cells
    table = pd.DataFrame.from_dict(out, orient="index")
    table.index.name = by if isinstance(by, str) else ", ".join(by)
    return table
