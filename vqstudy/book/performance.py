"""The performance page: ``results/performance.json`` rendered into ``book/performance.md`` and
``book/figures/performance.png``.

``benchmarks/bench_quantizer.py`` measures and writes the JSON, then renders it through
``benchmarks/perf_report.py`` (this module's command line). Nothing on the page is typed by hand:
every number comes from the JSON, and a quantity that was not measured says so (never "nan").
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import ROOT


RERUN = "python benchmarks/bench_quantizer.py"
TITLES = {"assign": "Code assignment (no gradient)",
          "train": "Training step (forward, backward, EMA update)",
          "kmeans": "k-means initialization", "diagnose": "Diagnostics against one assignment pass"}
NOT_MEASURED = "not measured"
DEFAULT_THREADS = 2  # bench_quantizer.THREADS
ARM_ORDER = ["vqstudy", "vqstudy (faiss backend)", "vqstudy.diagnose", "vqstudy.nearest_code", "reference",
             "faiss", "vector-quantize-pytorch", "floor"]  # the JSON stores arms sorted by name


def _ordered(arms) -> list[str]:
    return sorted(arms, key=lambda a: ARM_ORDER.index(a) if a in ARM_ORDER else len(ARM_ORDER))


SHORT = {  # target name -> the figure's panel title
    "assignment vs FAISS": "assign / FAISS", "assignment (faiss backend) vs FAISS": "backend assign / FAISS",
    "assignment vs chunked floor": "assign / floor", "training step vs chunked floor": "step / floor",
    "training step speed-up over vector-quantize-pytorch": "library step / step",
    "k-means vs FAISS": "k-means / FAISS", "k-means (faiss backend) vs FAISS": "backend k-means / FAISS",
    "diagnose vs one assignment pass": "diagnose / assign", "assignment memory vs one chunk": "assign memory / chunk",
}


def _num(x: float) -> str:
    """Three significant digits without exponents: 0.812, 12.3, 4567."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _shape(s: list[int] | tuple[int, ...]) -> str:
    return "N={:,}, D={}, K={:,}".format(*s)


def md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def ratio_text(r: dict[str, Any]) -> str:
    """'1.23× [1.10–1.35]': median of the paired per-round ratios and their interquartile range."""
    if r.get("q1") is None:
        return f"{_num(r['median'])}× (one call)"
    return f"{_num(r['median'])}× [{_num(r['q1'])}–{_num(r['q3'])}]"


def _op(t: dict[str, Any]) -> str:
    return f"{t['op'].replace('>=', '≥').replace('<=', '≤')} {t['threshold']:g}×"


def targets_table(data: dict[str, Any]) -> str:
    rows = [[t["name"], _shape(t["shape"]), ratio_text(t["ratio"]), _op(t), "met" if t["passed"] else "**missed**"]
            for t in data["targets"]]
    return md_table(["Measure", "Shape", "Measured: median [IQR]", "Target", "Result"], rows)


def _closeness(t: dict[str, Any], key: str) -> float | None:
    """Measured / allowed, oriented so that <= 1 meets the target for both kinds of target."""
    v = t["ratio"].get(key)
    if v is None:
        return None
    return v / t["threshold"] if t["op"] == "<=" else t["threshold"] / v


def _by_target(targets: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The target checks grouped by target name, in the order the targets are defined."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for t in targets:
        groups.setdefault(t["name"], []).append(t)
    return groups


MIN_ROWS = 3   # the height of a panel with fewer shapes


def plot(data: dict[str, Any], path: Path) -> None:
    """Every target at every shape: measured / allowed (<= 1 meets it), with the IQR of the paired ratios;
    one panel per target, its shapes as rows, the same log axis in every panel."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from .. import style

    style.apply()
    by_name = _by_target(data["targets"])
    # long panels first, two to a row, so that panels side by side have about as many shapes
    groups = sorted(by_name.items(), key=lambda g: -len(g[1]) if len(g[1]) > 6 else 0)
    nrows, ncols = style.grid(len(groups), max_cols=2)
    # at least MIN_ROWS rows of height per line of panels, so a title, ticks and labels fit a short panel
    rows_per_line = [max(MIN_ROWS, *(len(g) for _, g in groups[r * ncols:(r + 1) * ncols])) for r in range(nrows)]
    row_in = 0.15   # inches per shape row: the tick labels stay apart at the book's column width
    fig, axes = style.figure(nrows, ncols, panel_height=(0.55 * nrows + row_in * sum(rows_per_line)) / nrows,
                             squeeze=False, sharex=True, gridspec_kw={"height_ratios": [0.55 / row_in + n for n in rows_per_line]})
    n_d_k = lambda s: f"{s[0] // 1024}k·{s[1]}·{s[2]}" if s[0] % 1024 == 0 else f"{s[0]:,}·{s[1]}·{s[2]}"  # noqa: E731
    for ax, (name, checks) in zip(axes.flat, groups):
        for i, t in enumerate(checks):
            mid, lo, hi = (_closeness(t, key) for key in ("median", "q1", "q3"))
            colour = style.HEALTHY if t["passed"] else style.SHRUNK
            if lo is not None:
                lo, hi = sorted((lo, hi))
                ax.plot([lo, hi], [i, i], color=colour, lw=2.5, solid_capstyle="butt")
            ax.plot(mid, i, "o", ms=4, color=colour)
        ax.axvline(1.0, color=style.REFERENCE, ls="--", lw=1)
        ax.set_yticks(range(len(checks)), [n_d_k(t["shape"]) for t in checks])
        ax.set_ylim(len(checks) - 0.5, -0.5)
        ax.set_title(SHORT.get(name, name))
        ax.set_xscale("log")
    style.hide_unused(axes, len(groups))
    for col in range(ncols):   # the lowest visible panel of each column carries the axis labels
        bottom = [ax for ax in axes[:, col] if ax.get_visible()][-1]
        bottom.xaxis.set_tick_params(labelbottom=True)
        bottom.set_xlabel("measured / allowed")
    handles = [style.reference_handle("met", "-", style.HEALTHY), style.reference_handle("missed", "-", style.SHRUNK),
               style.reference_handle("target (≤ 1 meets it)")]
    style.shared_legend(fig, [h for h, _ in handles], [lab for _, lab in handles], ncol=3)
    lo = min(min(v for v in (_closeness(t, k) for k in ("median", "q1", "q3")) if v is not None)
             for t in data["targets"])
    ticks = [v for v in (0.03, 0.1, 0.3, 1, 3, 10, 30) if lo / 3 <= v]
    for ax in axes.flat:
        ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=style.DPI)
    plt.close(fig)


def _ms(s: dict[str, Any]) -> str:
    return f"{_num(s['median'] * 1e3)} [{_num(s['q1'] * 1e3)}–{_num(s['q3'] * 1e3)}]"


def workload_table(data: dict[str, Any], workload: str) -> list[str]:
    rows = [r for r in data["results"] if r["workload"] == workload]
    if not rows:
        return [f"{TITLES[workload]}: {NOT_MEASURED} in this mode."]
    arms = _ordered(rows[0]["arms"])
    head = ["N", "D", "K"] + [f"{a}, ms" for a in arms]
    if workload == "kmeans":
        head += [f"{a}, inertia" for a in arms]
    body = []
    for r in rows:
        line = [f"{r['n']:,}", str(r["d"]), f"{r['k']:,}"] + [_ms(r["arms"][a]) for a in arms]
        if workload == "kmeans":
            line += [f"{r['inertia'][a]:.4g}" for a in arms]
        body.append(line)
    rounds = rows[0]["arms"][arms[0]]["n"]
    out = [f"Median [interquartile range] milliseconds per call over {rounds} interleaved rounds."]
    if workload == "kmeans":
        out[0] += " Inertia: mean squared distance of each vector to its nearest center (lower is better)."
    return out + ["", md_table(head, body)]


def memory_table(data: dict[str, Any]) -> list[str]:
    if data.get("memory_error") or not data.get("memory"):
        return [f"Peak memory: {NOT_MEASURED} ({data.get('memory_error') or 'no shapes'})."]
    arms = _ordered(data["memory"][0]["peak_extra_bytes"])
    rows = [[f"{m['n']:,}", str(m["d"]), f"{m['k']:,}"] + [f"{m['peak_extra_bytes'][a] / 2 ** 20:.1f}" for a in arms]
            for m in data["memory"]]
    return ["Extra resident memory (MB) at the peak of one assignment call, after a warm-up call.", "",
            md_table(["N", "D", "K"] + [f"{a}, MB" for a in arms], rows)]


def _share(value: float) -> str:
    return "all" if value == 1 else f"{value:.3%}"


def gate_tables(data: dict[str, Any]) -> list[str]:
    gate = md_table(["N", "D", "K", "Arm", "Indices equal to vqstudy's", "Ties aside"],
                    [[f"{g['n']:,}", str(g["d"]), f"{g['k']:,}", g["arm"], _share(g["agree"]),
                      _share(g["agree_ties_aside"])] for g in data["gate"]])
    step = md_table(["N", "D", "K", "Indices equal", "Codebook gap", "Quantized-output gap", "Input-gradient gap"],
                    [[f"{s['n']:,}", str(s["d"]), f"{s['k']:,}", _share(s["agree"]),
                      f"{s['codebook_max_abs_diff']:.2g}", f"{s['quantized_max_abs_diff']:.2g}",
                      f"{s['input_grad_max_abs_diff']:.2g}"] for s in data["step_check"]])
    return ["Every assignment arm against vqstudy's `nearest_code`:", "", gate, "",
            "One training step of vqstudy's and vector-quantize-pytorch's quantizers from the same state "
            "(largest absolute differences afterwards):", "", step]


def machine_table(data: dict[str, Any]) -> str:
    # sorted: the same page whether rendered from the run's dict or from the JSON (stored with sorted keys)
    return md_table(["Fact", "Value"], [[k.replace("_", " "), str(v)] for k, v in sorted(data["machine"].items())])


def _lead(data: dict[str, Any]) -> str:
    targets = data["targets"]
    met = sum(t["passed"] for t in targets)
    missed = sorted({t["name"] for t in targets if not t["passed"]})
    text = (f"**{met} of {len(targets)}** target checks are met (each target at each measured shape). "
            "Every ratio is the median of ratios taken within one round of interleaved timing, with its "
            "interquartile range in brackets.")
    if missed:
        text += " Missed: " + "; ".join(missed) + "."
    return text + " " + data["machine"]["note"]


def _dropdown(title: str, body: list[str]) -> str:
    return "\n".join([f"::::{{dropdown}} {title}", "", *body, "", "::::"])


def how_measured(data: dict[str, Any]) -> list[str]:
    cfg = data["config"]
    return [
        f"- **Interleaved arms.** Each workload's arms run in one process, round-robin: a warm-up call of every "
        f"arm (two when a call takes under 1 s), then {cfg['rounds']} rounds, each timing every arm once, the "
        "order rotated by one arm per round. A timing repeats a call that takes less than "
        f"{cfg.get('min_sample_s', 0.2):g} s until it lasts about that long and reports the time per call, so a "
        "few-millisecond call is not timed alone. A ratio is computed within each round and summarized by the median "
        "and interquartile range (IQR) over rounds, so a load change hits numerator and denominator alike.",
        f"- **Threads.** torch and FAISS (OpenMP) both at {cfg['threads']} "
        f"thread{'s' if cfg['threads'] != 1 else ''}.",
        f"- **The floor** is `x @ C.T` computed in chunks of {cfg['chunk_size']:,} rows into one reused buffer. "
        "An exact search must know every one of the N×K distances, and this BLAS product is the fastest way to "
        "get them; reusing the buffer removes the allocation a fresh N×K result pays. So an exact search that "
        "writes its distances out costs at least this much; FAISS can go below it at small D by fusing the "
        "argmin into the product and never writing the distances.",
        "- **The reference** is the minimal chunked `addmm(‖c‖², x, Cᵀ, alpha=-2)` + `argmin`. **FAISS** is "
        "`faiss.IndexFlatL2`, built and searched inside the timed call. **vqstudy (faiss backend)** is "
        "`nearest_code(..., backend=\"faiss\")`, for assignments that need no gradient; training always uses "
        "the torch path.",
        f"- **Training step**: forward, backward of mean(q²) + quantizer loss to a fresh leaf input, EMA update. "
        f"vector-quantize-pytorch is built with `decay={cfg['ema_decay']}`, `eps={cfg['eps']}`, "
        f"`commitment_weight={cfg['beta']}`, `kmeans_init=False`, `rotation_trick=False`, "
        "`threshold_ema_dead_code=0`, and these settings are asserted on the built module. Before timing, both "
        "take one step from the same codebook and EMA state; indices, codebook and quantized output must agree "
        "(table under *Correctness*). Both quantize with the codebook from before the step's EMA update.",
        f"- **k-means**: vqstudy's `kmeans` (k-means++ seeding on at most 20,000 rows, then {cfg['kmeans_iters']} "
        f"Lloyd steps) against `faiss.Kmeans` with k-means++ seeding on all rows and the same "
        f"{cfg['kmeans_iters']} iterations; the inertia of each result is reported beside its time.",
        "- **Diagnostics**: `diagnose` with labels (every metric) against one `nearest_code` pass on the same "
        "data.",
        f"- **Memory**: peak resident memory above the level just before one assignment call, in a child "
        "process that resets the kernel's peak counter (`VmHWM`) and returns freed blocks at once. The bound: "
        f"{cfg['memory_bound']:g}× one chunk's distances (chunk × K float32) plus the N int64 indices.",
        f"- **Load**: load averages are recorded before any timing (other jobs only) and at the end "
        "(see *The machine*).",
    ]


def page(data: dict[str, Any]) -> str:
    mode = data["config"]["mode"]
    rerun = RERUN + (" --quick" if mode == "quick" else "") + \
        (f" --threads {data['config']['threads']}" if data["config"]["threads"] != DEFAULT_THREADS else "")
    parts = [
        "(performance)=",
        "# Performance: vqstudy against FAISS, a chunked floor and vector-quantize-pytorch",
        _lead(data),
        ":::{figure} figures/performance.png\n:name: fig-performance\n:width: 100%\n"
        ":alt: For every performance target at every measured shape, the measured ratio divided by the allowed "
        "ratio on a log scale, with its interquartile range; points left of the dashed line at 1 meet their "
        "target.\n\nMeasured / allowed for every target and shape (N·D·K): left of the dashed line meets the "
        "target. Bars: interquartile range of the paired per-round ratios. One panel per target, its rows the shapes; "
        "panel titles abbreviate the targets of the table below (\"backend\" is vqstudy with `backend=\"faiss\"`; "
        "\"library step / step\" is the speed-up over vector-quantize-pytorch, whose allowed value is a "
        "minimum).\n:::",
        ":::{table} Every target at every shape: median of the paired per-round ratios [interquartile range].\n"
        ":name: perf-targets\n\n" + targets_table(data) + "\n:::",
        f"*Generated by `benchmarks/bench_quantizer.py` ({mode} mode, {data['started']}, "
        f"{data['duration_s'] / 60:.1f} min); rerun with `{rerun}`, which rewrites `results/performance.json`, "
        "this page and its figure.*",
        "## Details",
        _dropdown("How it was measured", how_measured(data)),
    ]
    for workload in ("assign", "train", "kmeans", "diagnose"):
        body = workload_table(data, workload)
        if workload == "assign":
            body += [""] + memory_table(data)
        parts.append(_dropdown(TITLES[workload], body))
    parts.append(_dropdown("Correctness: indices and one training step", gate_tables(data)))
    parts.append(_dropdown("The machine", [machine_table(data)]))
    return "\n\n".join(parts) + "\n"


def render(data: dict[str, Any], book: Path = ROOT / "book") -> None:
    """Write the page and the figure; both come only from ``data``."""
    plot(data, book / "figures" / "performance.png")
    (book / "performance.md").write_text(page(data))
