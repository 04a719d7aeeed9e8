"""Turn run results into tidy tables: one row per run, then mean and interval per condition."""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

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


PHASES = ("final", "autoencoder")


def evaluation(result: Any, phase: str = "final") -> dict[str, Any]:
    """The evaluation of a run that a table reads: its last one (``phase='final'``), or its last one before
    quantization began (``'autoencoder'``: a deferred run's trained autoencoder, e.g. chapter 3's
    plain-autoencoder arm, a deferred run whose warm-up is its whole budget but one step)."""
    if phase not in PHASES:
        raise ValueError(f"invalid phase={phase!r}: allowed values are {', '.join(PHASES)}")
    if phase == "final":
        return result.final
    before = [e for e in result.evals if not e.get("quantized", True)]
    if not before:
        raise ValueError(f"phase='autoencoder': the run (schedule {result.config.train.schedule!r}) has no "
                         "evaluation before quantizing; use a deferred run with eval_every <= warmup_steps")
    return before[-1]


def plan_frame(plan: pd.DataFrame, results: Mapping[Any, Any]) -> pd.DataFrame:
    """One row per row of ``plan`` (chapter 3's runs): the plan's columns but ``config``, the run's seed and
    status, and the scalar metrics of :func:`evaluation` at the row's ``phase`` (column optional, default
    'final'). ``results`` maps each config of ``plan.config`` to its run, so a config that serves several
    rows (an arm shared by two comparisons) is trained once."""
    if "config" not in plan.columns:
        raise ValueError(f"plan needs a 'config' column, got columns {list(plan.columns)}")
    missing = [c for c in plan.config if c not in results]
    if missing:
        raise ValueError(f"{len(missing)} config(s) of the plan have no result, e.g. seed {missing[0].train.seed}")
    rows = []
    for row in plan.to_dict(orient="records"):
        res = results[row.pop("config")]
        phase = row.get("phase", "final")
        rows.append({**row, "seed": res.config.train.seed, "status": res.status,
                     **scalar_metrics(evaluation(res, phase))})
    return pd.DataFrame(rows)


def trajectory_frame(results: Iterable, condition: str | Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """One row per evaluation of each run (condition, seed, step, quantized, ``metrics``): how the metrics
    move during training (chapter 3's C9 trajectories). A deferred run's switch is evaluated twice
    (before the warm-up's last eval and after k-means); the later one, quantized, is kept."""
    results = list(results)
    conds = [condition] * len(results) if isinstance(condition, str) else list(condition)
    if len(conds) != len(results):
        raise ValueError(f"got {len(conds)} condition labels for {len(results)} results")
    rows = [{"condition": cond, "seed": res.config.train.seed, "step": e["step"], "quantized": e["quantized"],
             **{m: e.get(m, float("nan")) for m in metrics}}
            for cond, res in zip(conds, results) for e in res.evals]
    frame = pd.DataFrame(rows, columns=["condition", "seed", "step", "quantized", *metrics])
    return frame.drop_duplicates(["condition", "seed", "step"], keep="last").reset_index(drop=True)


def by_seed(frame: pd.DataFrame, metric: str, seeds: Iterable[int] | None = None, **where: Any) -> dict[int, float]:
    """``{seed: metric}`` over the rows where each ``column == value`` of ``where``: one arm of a paired
    comparison, the form :meth:`vqstudy.notebook.Claims.judge` and :func:`vqstudy.claims.paired_effect` take
    (chapters 1, 3, 4 and 5). Values may be tuples (e.g. ``condition=("sweep", 0.5)``). ``seeds`` keeps only
    those seeds, each of which must have a row, so that an arm run on many seeds pairs with one run on a few.
    Fails on an unknown column, on no matching rows, and on a seed that appears twice (two rows of one seed
    would mean the selection is not one arm).
    """
    for column in (metric, *where):
        if column not in frame.columns:
            raise ValueError(f"unknown column {column!r}; available: {sorted(map(str, frame.columns))}")
    sel = frame
    for column, value in where.items():
        sel = sel[sel[column].map(lambda v, value=value: v == value)]
    if sel.empty:
        raise ValueError(f"no rows with {where}")
    if sel.seed.duplicated().any():
        raise ValueError(f"rows with {where} repeat seeds {sorted(set(sel.seed[sel.seed.duplicated()]))}: "
                         "select one arm")
    values = {int(s): float(v) for s, v in zip(sel.seed, sel[metric])}
    if seeds is None:
        return values
    wanted = [int(s) for s in seeds]
    missing = sorted(set(wanted) - set(values))
    if missing:
        raise ValueError(f"rows with {where} have no run for seed(s) {missing}")
    return {s: values[s] for s in wanted}


def contrast(means: pd.DataFrame, metric: str, arms: tuple[str, str], keys: Sequence[Any],
             key_label: str = "{}", digits: int = 3) -> str:
    """"key: A against B; ..." for the mean ``metric`` of two arms at each key, from ``means`` indexed by
    (arm, key) (chapter 1's untrained and trained encoder at each input dimension), numbers as the reader
    tables format them; for evidence lines and glued prose."""
    if metric not in means.columns:
        raise ValueError(f"unknown metric {metric!r}; available: {sorted(map(str, means.columns))}")
    missing = [(a, k) for a in arms for k in keys if (a, k) not in means.index]
    if missing:
        raise ValueError(f"means has no row for (arm, key) {missing[0]!r}")
    return "; ".join(f"{key_label.format(k)}: {fmt_value(means.loc[(arms[0], k), metric], digits)} against "
                     f"{fmt_value(means.loc[(arms[1], k), metric], digits)}" for k in keys)


def value_range(values: Iterable[float], digits: int = 3) -> str:
    """"low–high" of ``values`` as the reader tables format numbers (one number when they are all equal):
    a range over the cells of chapter 3's capacity grid, for glued prose."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("values is empty")
    low, high = fmt_value(min(v), digits), fmt_value(max(v), digits)
    return low if low == high else f"{low}–{high}"


def saturation_point(values: pd.Series, higher_is_better: bool, tolerance: float = 0.1) -> Any:
    """The first index (e.g. the smallest width) from which every value stays within ``tolerance`` of the
    best (chapter 3's "where the metrics saturate"); None when the last one falls outside."""
    if not 0 <= tolerance < 1:
        raise ValueError(f"invalid tolerance={tolerance!r}: must lie in [0, 1)")
    if values.empty:
        raise ValueError("values is empty")
    best = values.max() if higher_is_better else values.min()
    ok = (values >= (1 - tolerance) * best) if higher_is_better else (values <= (1 + tolerance) * best)
    return next((k for i, k in enumerate(values.index) if ok.iloc[i:].all()), None)


def fmt_effect(effect: Sequence[float], digits: int = 3) -> str:
    """A paired effect and its interval, ``(effect, low, high)``, as "1.02 [0.97, 1.08]" (chapter 4's prose)."""
    if len(effect) != 3:
        raise ValueError(f"effect must be (effect, low, high), got {effect!r}")
    e, lo, hi = (float(v) for v in effect)
    return f"{e:.{digits}g} [{lo:.{digits}g}, {hi:.{digits}g}]"


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
    "used_codebook_effective_dim": "Used codes' eff. dim.", "water_filling_dim": "Water-filling dim.",
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


# --- medians with distribution-free intervals (chapter 8, "Which fix?") ---

def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): the median and a distribution-free ``confidence`` interval for it.

    The interval is the pair of order statistics the binomial(n, 1/2) brackets (as for a sign test),
    so one collapsed seed among ten moves neither end much, unlike a mean and its t interval. With
    few values (n < 6 at 95%) it is the sample's range, whose coverage is then below ``confidence``.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"invalid confidence={confidence!r}: must lie strictly between 0 and 1")
    v = np.sort(np.asarray(values, dtype=float))
    if v.ndim != 1 or len(v) == 0 or not np.isfinite(v).all():
        raise ValueError(f"median_interval needs a non-empty list of finite numbers, got {values!r}")
    n = len(v)
    rank = int(stats.binom.ppf((1 - confidence) / 2, n, 0.5))
    return float(np.median(v)), float(v[max(rank - 1, 0)]), float(v[min(n - rank, n - 1)])


MEDIAN_STATS = ("median", "low", "high")


def median_table(df: pd.DataFrame, metrics: Sequence[str], by: str | list[str] = "condition",
                 confidence: float = 0.95) -> pd.DataFrame:
    """Median and distribution-free interval (:func:`median_interval`) of each metric per group, as numbers.

    Columns are (metric, 'median' | 'low' | 'high'), so the table sorts by any of them
    (``table.sort_values(("recon_error", "median"))``); groups keep their first-seen order and
    a 'runs' column counts their rows.
    """
    missing = [m for m in metrics if m not in df.columns]
    if missing:
        raise ValueError(f"unknown metric(s) {missing}; available: {sorted(df.columns)}")
    rows = {}
    for key, group in df.groupby(by, sort=False):
        row = {(m, s): value for m in metrics
               for s, value in zip(MEDIAN_STATS, median_interval(group[m].to_numpy(), confidence))}
        row[("runs", "")] = len(group)
        rows[key] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    table.index = pd.MultiIndex.from_tuples(table.index, names=by) if isinstance(by, list) else table.index
    table.index.name = by if isinstance(by, str) else None
    return table


def fmt_median_interval(median: float, low: float, high: float, digits: int = 3) -> str:
    """"median [low, high]" with ``digits`` significant digits each; the median alone when all three agree."""
    if median == low == high:
        return fmt_value(median, digits)
    return f"{fmt_value(median, digits)} [{fmt_value(low, digits)}, {fmt_value(high, digits)}]"


def median_strings(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A :func:`median_table` as one "median [low, high]" string column per metric, for :func:`show_table`."""
    metrics = [m for m in dict.fromkeys(table.columns.get_level_values(0)) if m != "runs"]
    return pd.DataFrame({m: [fmt_median_interval(*(row[(m, s)] for s in MEDIAN_STATS), digits=digits)
                             for _, row in table.iterrows()] for m in metrics}, index=table.index)
