"""Turn run results into tidy tables: one row per run, then mean and interval per condition."""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

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


def by_seed(df: pd.DataFrame, condition: str, metric: str, column: str = "condition") -> dict[int, float]:
    """``{seed: value}`` of ``metric`` for the runs of one condition: an arm of a primary test, as
    :meth:`vqstudy.notebook.Claims.judge` takes it (chapters 2 and 7). Fails on a missing or repeated seed."""
    if metric not in df.columns:
        raise ValueError(f"unknown metric={metric!r}; available: {sorted(df.columns)}")
    rows = df[df[column] == condition]
    if rows.empty:
        raise ValueError(f"no runs of {column}={condition!r}; available: {sorted(df[column].unique())}")
    if rows["seed"].duplicated().any():
        raise ValueError(f"{column}={condition!r}: a seed appears more than once")
    return {int(s): float(v) for s, v in zip(rows["seed"], rows[metric])}


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
    """Mean ± 95% interval of each metric per group, as strings (:func:`fmt_interval`)."""
    missing = [m for m in metrics if m not in df.columns]
    if missing:
        raise ValueError(f"unknown metric(s) {missing}; available: {sorted(df.columns)}")
    out = {}
    for key, group in df.groupby(by, sort=False):
        cells = {}
        for m in metrics:
            mean, half = interval(group[m].to_numpy())
            cells[m] = fmt_interval(mean, half, digits)
        cells["runs"] = len(group)
        out[key] = cells
    table = pd.DataFrame.from_dict(out, orient="index")
    table.index.name = by if isinstance(by, str) else ", ".join(by)
    return table


# --- tables for readers: human headers, one number format, narrow enough for the book's column ---

LABELS = {
    "condition": "Condition", "seed": "Seed", "runs": "Runs", "utilization": "Utilization",
    "perplexity": "Perplexity", "codebook_cosine_spread": "Cosine spread", "codebook_euclidean_spread": "L2 spread",
    "mode_entropy": "Mode entropy H", "clusters_covered": "Clusters covered", "quantization_error": "Quant. error Q",
    "recon_error": "Recon. MSE", "embed_effective_dim": "Effective dim.", "embed_participation_ratio":
    "Participation ratio", "embed_total_variance": "Total variance", "cluster_separation": "Fisher ratio",
    "usage_entropy": "Usage entropy", "used_bits": "Used bits", "codebook_effective_dim": "Codebook eff. dim.",
}
MAX_COLUMNS = 4   # value columns beside the row labels that fit the ~700 px column without scrolling


def label(name: Any) -> str:
    """A human header for a column name: the study's label, else the name with spaces, capitalized."""
    if isinstance(name, tuple):
        return ", ".join(label(n) for n in name if str(n) != "")
    text = LABELS.get(str(name))
    if text is None:
        text = str(name).replace("_", " ")
        text = text[:1].upper() + text[1:]
    return text


def _decimals(value: float, digits: int) -> int:
    return digits - 1 - math.floor(math.log10(abs(value))) if value != 0 else 0


def fmt_value(value: Any, digits: int = 3) -> str:
    """``digits`` significant digits in plain notation (no 1e-3 style); whole numbers without decimals."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    v = float(value)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v.is_integer() and abs(v) < 1e15:
        return f"{int(v):,}".replace("-", "−")
    d = _decimals(v, digits)
    if d <= 0:
        return f"{round(v, d):,.0f}".replace("-", "−")
    return f"{v:.{d}f}".replace("-", "−")


def _fixed(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals; a negative count rounds to tens, hundreds, ... (thousands separated)."""
    if decimals <= 0:
        step = 10 ** (-decimals)
        return f"{round(value / step) * step:,.0f}".replace("-", "−")
    return f"{value:.{decimals}f}".replace("-", "−")


def fmt_interval(mean: float, half: float, digits: int = 3) -> str:
    """"mean ± half": the half-width to 2 significant digits, the mean to ``digits`` significant digits or to
    the half-width's last decimal, whichever is finer (never scientific notation).

    Without an interval (one run, or all runs equal) the mean alone, as :func:`fmt_value`.
    """
    if not half or math.isnan(half):
        return fmt_value(mean, digits)
    d_half = _decimals(half, 2)
    d_mean = max(d_half, _decimals(mean, digits)) if mean else d_half
    return f"{_fixed(mean, d_mean)} ± {_fixed(half, d_half)}"


def reader_table(table: pd.DataFrame, digits: int = 3, index_label: str | None = None,
                 decimals: int | None = None) -> pd.DataFrame:
    """The table as strings for reading: human headers, numbers via :func:`fmt_value`, or with a fixed
    number of ``decimals`` (for a table of shares or means whose columns should line up)."""
    out = table.copy()
    out.columns = [label(c) for c in out.columns]
    for c in out.columns:
        out[c] = [fmt_value(v, digits) if decimals is None or not isinstance(v, (float, np.floating))
                  else f"{v:.{decimals}f}" for v in out[c]]
    out.index = [label(i) if isinstance(i, tuple) else str(i) for i in out.index]
    name = index_label if index_label is not None else (
        label(table.index.name) if table.index.name else "")
    out.columns.name = name
    return out


class ReaderTable:
    """A table shown as one or more HTML tables of at most ``max_columns`` value columns each."""

    def __init__(self, table: pd.DataFrame, caption: str = "", digits: int = 3,
                 max_columns: int = MAX_COLUMNS, index_label: str | None = None, index: bool = True,
                 decimals: int | None = None):
        if max_columns < 1:
            raise ValueError(f"max_columns={max_columns!r} is invalid: expected an integer >= 1")
        self.caption, self.index = caption, index
        groups = [table]
        if table.shape[1] > max_columns:
            if isinstance(table.columns, pd.MultiIndex):   # split along the top level first
                groups = [table[[k]] for k in dict.fromkeys(table.columns.get_level_values(0))]
            split = []
            for g in groups:          # balanced parts: 8 columns become 4 + 4, not 5 + 3
                n_parts = -(-g.shape[1] // max_columns)
                size = -(-g.shape[1] // n_parts)
                split += [g.iloc[:, i:i + size] for i in range(0, g.shape[1], size)]
            groups = split
        self.parts = [reader_table(g, digits, index_label, decimals) for g in groups]

    def _repr_html_(self) -> str:
        html = [f'<p class="vq-table-caption">{self.caption}</p>' if self.caption else ""]
        for part in self.parts:
            html.append(part.to_html(classes="vq-table", border=0, index=self.index, escape=True))
        return '<div class="vq-tables">' + "".join(html) + "</div>"

    def __repr__(self) -> str:
        text = [self.caption] if self.caption else []
        text += [p.to_string(index=self.index) for p in self.parts]
        return "\n\n".join(text)


def show_table(table: pd.DataFrame, caption: str = "", digits: int = 3, max_columns: int = MAX_COLUMNS,
               index_label: str | None = None, index: bool = True, decimals: int | None = None) -> None:
    """Display ``table`` for readers (see :class:`ReaderTable`)."""
    from IPython.display import display

    display(ReaderTable(table, caption, digits, max_columns, index_label, index, decimals))
