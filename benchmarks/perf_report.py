"""Render results/performance.json into book/performance.md and book/figures/performance.png.

Called by bench_quantizer.py after each run; also runnable alone to re-render
without re-measuring: ``.venv/bin/python benchmarks/perf_report.py [results/performance.json]``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RERUN = ".venv/bin/python benchmarks/bench_quantizer.py"
TITLES = {"assign": "Code assignment (no grad)", "train": "Training step (forward + backward + EMA update)",
          "kmeans": "k-means initialization", "diagnose": "Diagnostics vs one assignment pass"}


def _num(ms: float) -> str:
    """Three significant digits without exponents: 0.812, 12.3, 4567."""
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.3g}"


def _ms(t: dict[str, Any]) -> str:
    return f"{_num(t['median'] * 1e3)} [{_num(t['min'] * 1e3)}–{_num(t['max'] * 1e3)}] (n={t['n']})"


def _mb(b: int | None) -> str:
    return "–" if b is None else f"{b / 2 ** 20:.1f}"


def _frame(data: dict[str, Any], workload: str) -> pd.DataFrame:
    rows = [r for r in data["results"] if r["workload"] == workload]
    return pd.DataFrame([{**r, "median_s": r["time"]["median"]} for r in rows])


def md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _gap(value: float | None) -> str:
    return "headline shape only" if value is None else f"{value:.2g}"


def _share(value: float) -> str:
    """A share of vectors: 'all' when every one agrees, else a percentage with enough digits to differ."""
    return "all" if value == 1 else f"{value:.3%}"


def gate_table(data: dict[str, Any]) -> str:
    rows = [[f"{g['n']:,}", str(g["d"]), f"{g['k']:,}", _share(g["agree"]), _share(g["agree_ties_aside"]),
             _gap(g["ema_codebook_max_abs_diff"])] for g in data["gate"]]
    return md_table(["N", "D", "K", "Indices equal", "Ties aside", "Codebook gap after one EMA step"], rows)


def machine_table(data: dict[str, Any]) -> str:
    return md_table(["Fact", "Value"], [[k.replace("_", " "), str(v)] for k, v in data["machine"].items()])


IMPL_COLOURS = {"vqstudy": "#0072B2", "vector-quantize-pytorch": "#D55E00", "matmul": "#7F7F7F"}
IMPL_NAMES = {"vqstudy": "vqstudy", "vector-quantize-pytorch": "vector-quantize-pytorch", "matmul": "bare x @ C.T"}
HEADLINES = {  # target name -> how a reader is told the result
    "training step speed-up over vector-quantize-pytorch": "Training step, vqstudy vs the library",
    "assignment time / bare matmul (headline shape)": "Code assignment vs a bare matmul",
    "assignment time / bare matmul (worst grid shape)": "Code assignment vs a bare matmul, worst shape",
    "diagnose time / one nearest_code pass": "All diagnostics vs one assignment pass",
    "assignment memory growth N=16384->65536 / full-matrix growth": "Assignment memory growth vs a full distance matrix",
}


def plot(data: dict[str, Any], path: Path) -> None:
    """Median time vs K at the headline N and D, one panel per workload, one line per implementation."""
    from vqstudy import style

    style.apply()
    n, d, _ = data["config"]["headline"]
    frames = {w: _frame(data, w) for w in ("assign", "train", "kmeans")}
    frames = {w: df[(df["n"] == n) & (df["d"] == d)] for w, df in frames.items() if not df.empty}
    panels = {w: df for w, df in frames.items() if not df.empty}
    fig, axes = style.figure(1, len(panels), panel_height=2.5, squeeze=False)
    for ax, (workload, df) in zip(axes[0], panels.items()):
        for impl, g in df.groupby("impl", sort=False):
            g = g.sort_values("k")
            ax.plot(g["k"], g["median_s"] * 1e3, marker="o", ms=4, color=IMPL_COLOURS.get(impl),
                    label=IMPL_NAMES.get(impl, impl))
        ax.set(xscale="log", yscale="log", xlabel="codebook size K", ylabel="ms per call" if ax is axes[0, 0] else "",
               title={"assign": "Code assignment", "train": "Training step", "kmeans": "k-means init"}[workload])
        ax.set_xscale("log", base=2)
    style.legend_from(axes[0, 0], fig, ncol=3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=style.DPI)
    plt.close(fig)


def _ratio(value: float) -> str:
    return f"{value:.3g}×"


def headline_table(data: dict[str, Any]) -> str:
    """The targets as a reader reads them: what, at which shape, measured, required, met or not."""
    rows = []
    for t in data["targets"]:
        shape = "N={:,}, D={}, K={:,}".format(*t["shape"])
        rows.append([HEADLINES.get(t["name"], t["name"]), shape, _ratio(t["value"]),
                     f"{t['op'].replace('>=', '≥').replace('<=', '≤')} {t['threshold']:g}×",
                     "met" if t["passed"] else "**missed**"])
    return md_table(["Measure", "Shape", "Measured", "Target", "Result"], rows)


def _lead(data: dict[str, Any]) -> str:
    by = {t["name"]: t for t in data["targets"]}
    n, d, k = data["config"]["headline"]
    train = by.get("training step speed-up over vector-quantize-pytorch")
    assign = by.get("assignment time / bare matmul (headline shape)")
    diag = by.get("diagnose time / one nearest_code pass")
    bits = []
    if train:
        bits.append(f"a vqstudy training step (forward, backward, EMA update) is **{train['value']:.1f}× faster** "
                    "than vector-quantize-pytorch's, configured alike")
    if assign:
        bits.append(f"assigning codes costs **{assign['value']:.3g}×** a bare `x @ C.T` of the same shape")
    if diag:
        bits.append(f"all of vqstudy's collapse diagnostics cost **{diag['value']:.3g}×** one assignment pass")
    met = sum(t["passed"] for t in data["targets"])
    return (f"At the headline shape (N = {n:,} vectors, D = {d}, K = {k:,}) " + "; ".join(bits) + ". "
            f"{met} of the {len(data['targets'])} performance targets are met. Every workload and shape, with the "
            "spread of its timed runs, is under *Details*.")


def _dropdown(title: str, body: list[str]) -> list[str]:
    return [f"::::{{dropdown}} {title}", *body, "::::"]


def workload_tables(data: dict[str, Any], workload: str) -> list[str]:
    """Times, then peak memory, one row per shape (two narrow tables rather than one wide one)."""
    df = _frame(data, workload)
    impls = list(dict.fromkeys(df["impl"]))
    times, memory = [], []
    for (n, d, k), group in df.groupby(["n", "d", "k"], sort=True):
        by = {r["impl"]: r for r in group.to_dict("records")}
        shape = [f"{n:,}", str(d), f"{k:,}"]
        times.append(shape + [_ms(by[i]["time"]) for i in impls]
                     + ([f"{by[i]['mse']:.4g}" for i in impls] if workload == "kmeans" else []))
        if any(by[i].get("peak_extra_bytes") is not None for i in impls):
            memory.append(shape + [_mb(by[i].get("peak_extra_bytes")) for i in impls])
    names = [IMPL_NAMES.get(i, i) for i in impls]
    head = ["N", "D", "K"] + [f"{i}, ms" for i in names] + ([f"{i}, MSE" for i in names] if workload == "kmeans" else [])
    out = ["Median [min–max] milliseconds per call over n timed runs.", "", md_table(head, times)]
    if memory:
        out += ["", "Extra resident memory (MB) at the peak of one call.", "",
                md_table(["N", "D", "K"] + [f"{i}, MB" for i in names], memory)]
    return out


def page(data: dict[str, Any]) -> str:
    cfg, mode = data["config"], data["config"]["mode"]
    rerun = RERUN + (" --quick" if mode == "quick" else "")
    how = [
        f"- Both quantizers are configured alike: straight-through estimator (the library with "
        f"`rotation_trick=False`), EMA codebook updates with decay {cfg['ema_decay']} (Laplace-smoothed counts, "
        f"the same EMA sums/counts state), commitment weight {cfg['beta']}, no k-means init, no dead-code "
        "restarts, the same codebook copied into both. The floor is the bare `x @ C.T` of the same shapes.",
        f"- torch threads fixed at {cfg['threads']}. Times are the median and [min–max] of n timed runs after "
        f"one warm-up run (two when a run takes under 1 s). Assignment and training: n = {cfg['repeats']}, fewer "
        f"(at least 3) where {cfg['repeats']} runs would take over {cfg['budget_s']:.0f} s — the largest shapes — "
        f"except at the headline shape {tuple(cfg['headline'])}, which always gets {cfg['repeats']}; "
        f"k-means and diagnostics: n = {cfg['slow_repeats']}, fewer (k-means: down to 1) where that would take over "
        f"{cfg['slow_budget_s']:.0f} s.",
        "- k-means: vqstudy's `kmeans` with its defaults (k-means++ seeding on at most 20,000 points, then "
        f"{cfg['kmeans_iters']} Lloyd steps) against the library's `kmeans` (random-sample seeding) with the same "
        "number of iterations. The algorithms differ in seeding, so the tables also give the final mean squared "
        "distance (MSE) of each result. The k-means shapes are a cross through the grid "
        "(every K at D=64 and every D at K=1024, N=65536).",
        "- Peak memory: the peak resident memory above the level just before one call (after a warm-up call), "
        "measured in a child process that resets the kernel's peak counter (`/proc/self/clear_refs`, `VmHWM`) "
        "before each call and runs with `MALLOC_MMAP_THRESHOLD_=131072` so freed tensors leave the process at "
        "once; this counts all of torch's allocations, outputs included.",
        "- The machine is shared: other jobs may run beside the benchmark (see the load averages under the "
        "machine). Every ratio compares numbers taken minutes apart in one process; the [min–max] spreads show "
        "the remaining noise.",
        f"- Correctness gate, before any timing: indices of both implementations agree on at least 99.9% of "
        f"vectors (ties aside) for every shape, else the script exits non-zero. Gate passed: "
        f"**{'yes' if data['gate_passed'] else 'no'}**.",
    ]
    if data.get("memory_error"):
        how.append(f"- Memory was not measured: {data['memory_error']}")
    n, d, _ = cfg["headline"]
    parts = [
        "(performance)=",
        "# Performance: vqstudy vs vector-quantize-pytorch",
        _lead(data),
        ":::{table} The performance targets at their shapes (medians of the timed runs).\n:name: perf-targets\n\n"
        + headline_table(data) + "\n:::",
        ":::{figure} figures/performance.png\n:name: fig-performance\n:width: 100%\n"
        ":alt: Median time per call against codebook size for code assignment, the training step and k-means, "
        "vqstudy against vector-quantize-pytorch and a bare matrix product.\n\n"
        f"Median time per call against codebook size K at N = {n:,}, D = {d} (log–log).\n:::",
        f"*Generated by `benchmarks/bench_quantizer.py` ({mode} mode, {data['started']}, "
        f"{data['duration_s'] / 60:.1f} min); rerun with `{rerun}`, which rewrites `results/performance.json`, this "
        "page and its figure.*",
        "## Details",
        "\n".join(_dropdown("How it was measured", [""] + how + [""])),
    ]
    for workload in ("assign", "train", "kmeans", "diagnose"):
        parts.append("\n".join(_dropdown(TITLES[workload], [""] + workload_tables(data, workload) + [""])))
    parts.append("\n".join(_dropdown("Correctness gate: indices of both implementations per shape",
                                     ["", gate_table(data), ""])))
    if data["profiles"]:
        body = ["", "torch.profiler, top operations by self CPU time: for each missed target, and always for "
                "vqstudy's k-means.", ""]
        for name, table in data["profiles"].items():
            body += [f"**{name}**", "", "```text", table.rstrip(), "```", ""]
        parts.append("\n".join(_dropdown("Profiler output", body)))
    parts.append("\n".join(_dropdown("The machine", ["", machine_table(data), ""])))
    return "\n\n".join(parts) + "\n"


def render(data: dict[str, Any], book: Path = ROOT / "book") -> None:
    """Write the page and the figure; both come only from ``data``."""
    plot(data, book / "figures" / "performance.png")
    (book / "performance.md").write_text(page(data))


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "results" / "performance.json"
    render(json.loads(source.read_text()))
