"""Speed and memory of vqstudy's quantizer against vector-quantize-pytorch and the bare matmul floor.

Run: ``.venv/bin/python benchmarks/bench_quantizer.py [--quick] [--out results/performance.json]``.
One process times everything (so ratios share a machine state); peak
memory is measured in a child process whose allocator returns large blocks
to the OS at once (``MALLOC_MMAP_THRESHOLD_``), with the peak reset before
each measurement through ``/proc/self/clear_refs`` -- torch's allocations
are invisible to tracemalloc. The JSON is written atomically, then
``perf_report.py`` renders ``book/performance.md`` and the figure from it.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from vqstudy.diagnostics import diagnose
from vqstudy.quantize import VectorQuantizer, kmeans, nearest_code
from vector_quantize_pytorch import VectorQuantize
from vector_quantize_pytorch.vector_quantize_pytorch import kmeans as library_kmeans

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_report  # noqa: E402  (sibling module; this file runs as a script)

ROOT = Path(__file__).resolve().parents[1]
THREADS = 2
EMA_DECAY, BETA, KMEANS_ITERS = 0.99, 0.25, 20
HEADLINE = (65536, 64, 1024)
KMEANS_PROFILE = (16384, 64, 1024)
FULL_GRID = [(n, d, k) for n in (16384, 65536) for d in (16, 64, 256) for k in (256, 1024, 4096)]
# k-means is the slowest workload: a cross through the grid at N=65536 (every K at D=64, every D at K=1024).
FULL_KMEANS = [(65536, 64, k) for k in (256, 1024, 4096)] + [(65536, d, 1024) for d in (16, 256)]
QUICK_GRID = [(16384, 16, 256), (16384, 64, 1024), (65536, 64, 1024)]
MODES = {
    "full": dict(grid=FULL_GRID, kmeans=FULL_KMEANS, diagnose=(1_000_000, 64, 4096),
                 repeats=10, budget_s=8.0, slow_repeats=3, slow_budget_s=30.0),
    "quick": dict(grid=QUICK_GRID, kmeans=[(16384, 16, 256)], diagnose=(100_000, 64, 1024),
                  repeats=10, budget_s=8.0, slow_repeats=3, slow_budget_s=30.0),
}
IMPLS = {"assign": ("vqstudy", "vector-quantize-pytorch", "matmul"),
         "train": ("vqstudy", "vector-quantize-pytorch"),
         "kmeans": ("vqstudy", "vector-quantize-pytorch"),
         "diagnose": ("vqstudy.diagnose", "vqstudy.nearest_code")}
MB = 2.0 ** 20


# --- data and the two quantizers configured like for like ---------------------------------------

def make_data(n: int, d: int, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian vectors and a codebook of k of them plus noise (so every code gets used)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    codes = x[torch.randperm(n, generator=gen)[:k]] + 0.05 * torch.randn(k, d, generator=gen)
    return x, codes


def library_quantizer(codebook: torch.Tensor) -> VectorQuantize:
    """VectorQuantize with straight-through, EMA 0.99, no k-means, no restarts, the given codebook."""
    k, d = codebook.shape
    vq = VectorQuantize(dim=d, codebook_size=k, decay=EMA_DECAY, eps=1e-5, kmeans_init=False,
                        rotation_trick=False, commitment_weight=BETA, threshold_ema_dead_code=0)
    with torch.no_grad():  # same EMA state as VectorQuantizer.set_codebook: sums = codes, counts = 1
        vq.codebook = codebook
        vq._codebook.embed_avg.copy_(codebook[None])
        vq._codebook.cluster_size.fill_(1.0)
    return vq


def vqstudy_quantizer(codebook: torch.Tensor) -> VectorQuantizer:
    k, d = codebook.shape
    vq = VectorQuantizer(k, d, beta=BETA, update="ema", ema_decay=EMA_DECAY)
    vq.set_codebook(codebook)
    return vq


# --- the workloads: each returns {implementation: zero-argument callable} -----------------------

def _no_grad(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with torch.no_grad():
            return fn()
    return run


def assign_fns(x: torch.Tensor, codes: torch.Tensor) -> dict[str, Callable[[], Any]]:
    lib = library_quantizer(codes).eval()
    x3 = x[None]
    return {"vqstudy": _no_grad(lambda: nearest_code(x, codes)),
            "vector-quantize-pytorch": _no_grad(lambda: lib(x3)[1]),
            "matmul": _no_grad(lambda: x @ codes.T)}


def _loss_step(forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor):
    """Forward, then backward of mean(q^2) + quantizer loss to a fresh leaf input (no grad accumulation)."""
    def step() -> None:
        leaf = x.detach().requires_grad_()
        quantized, loss = forward(leaf)
        (quantized.square().mean() + loss).backward()
    return step


def train_fns(x: torch.Tensor, codes: torch.Tensor,
              modules: tuple[VectorQuantizer, VectorQuantize] | None = None) -> dict[str, Callable[[], Any]]:
    ours, lib = modules or (vqstudy_quantizer(codes).train(), library_quantizer(codes).train())

    def ours_forward(leaf: torch.Tensor):
        out = ours(leaf)
        return out.quantized, out.loss

    def lib_forward(leaf: torch.Tensor):
        quantized, _, loss = lib(leaf)
        return quantized, loss
    return {"vqstudy": _loss_step(ours_forward, x), "vector-quantize-pytorch": _loss_step(lib_forward, x[None])}


def kmeans_fns(x: torch.Tensor, codes: torch.Tensor) -> dict[str, Callable[[], Any]]:
    k = codes.shape[0]
    return {"vqstudy": lambda: kmeans(x, k, iters=KMEANS_ITERS),
            "vector-quantize-pytorch": lambda: library_kmeans(x[None], k, num_iters=KMEANS_ITERS)[0][0]}


def labels_for(n: int) -> torch.Tensor:
    return torch.arange(n) % 10


def diagnose_fns(x: torch.Tensor, codes: torch.Tensor) -> dict[str, Callable[[], Any]]:
    idx, labels = nearest_code(x, codes), labels_for(x.shape[0])
    return {"vqstudy.diagnose": lambda: diagnose(x, idx, codes, labels),
            "vqstudy.nearest_code": lambda: nearest_code(x, codes)}


WORKLOADS = {"assign": assign_fns, "train": train_fns, "kmeans": kmeans_fns, "diagnose": diagnose_fns}


# --- timing -------------------------------------------------------------------------------------

def summarize(times: list[float]) -> dict[str, Any]:
    t = np.asarray(times)
    return {"median": float(np.median(t)), "q1": float(np.percentile(t, 25)), "q3": float(np.percentile(t, 75)),
            "min": float(t.min()), "max": float(t.max()), "n": len(times)}


def time_fn(fn: Callable[[], Any], repeats: int, budget_s: float, min_repeats: int = 3) -> dict[str, Any]:
    """Warm up once (twice when cheap), then ``repeats`` timed runs, fewer (>= min_repeats) past the budget."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    if first < 1.0:
        fn()
    n = repeats if first * repeats <= budget_s else max(min_repeats, int(budget_s / first))
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return summarize(times)


def profile_table(fn: Callable[[], Any], rows: int = 12) -> str:
    """torch.profiler's top ops (by self CPU time) for one run after a warm-up."""
    from torch.profiler import ProfilerActivity, profile
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


# --- correctness gate ---------------------------------------------------------------------------

def agreement(x: torch.Tensor, codes: torch.Tensor, ours: torch.Tensor, theirs: torch.Tensor) -> dict[str, Any]:
    """Share of equal indices; a difference counts as a tie when both codes are equally near in float64."""
    diff = ours != theirs
    xd, cd = x[diff].double(), codes.double()
    d_ours = (xd - cd[ours[diff]]).pow(2).sum(1)
    d_theirs = (xd - cd[theirs[diff]]).pow(2).sum(1)
    scale = xd.pow(2).sum(1) + torch.maximum(cd[ours[diff]].pow(2).sum(1), cd[theirs[diff]].pow(2).sum(1))
    ties = int(((d_ours - d_theirs).abs() <= 1e-5 * scale).sum())
    n, n_diff = x.shape[0], int(diff.sum())
    return {"agree": 1 - n_diff / n, "agree_ties_aside": 1 - (n_diff - ties) / n, "differ": n_diff, "ties": ties}


def ema_step_gap(x: torch.Tensor, codes: torch.Tensor) -> float:
    """Max |codebook difference| after one EMA training step of both: checks the configs really match."""
    ours, lib = vqstudy_quantizer(codes).train(), library_quantizer(codes).train()
    for fn in train_fns(x, codes, (ours, lib)).values():
        fn()
    return float((ours.codebook.detach() - lib.codebook.detach()).abs().max())


def gate(grid: list[tuple[int, int, int]]) -> list[dict[str, Any]]:
    rows = []
    for n, d, k in grid:
        x, codes = make_data(n, d, k)
        fns = assign_fns(x, codes)
        row = {"n": n, "d": d, "k": k, **agreement(x, codes, fns["vqstudy"](), fns["vector-quantize-pytorch"]()[0])}
        row["ema_codebook_max_abs_diff"] = ema_step_gap(x, codes) if (n, d, k) == HEADLINE else None
        row["passed"] = row["agree_ties_aside"] >= 0.999
        rows.append(row)
        print(f"gate N={n} D={d} K={k}: agree {row['agree']:.5f} (ties aside {row['agree_ties_aside']:.5f}), "
              f"EMA step codebook gap {row['ema_codebook_max_abs_diff']}", flush=True)
    return rows


# --- measurement loops --------------------------------------------------------------------------

def measure_workload(name: str, shapes: list[tuple[int, int, int]], repeats: int, budget_s: float,
                     min_repeats: int = 3) -> list[dict[str, Any]]:
    rows = []
    for n, d, k in shapes:
        x, codes = make_data(n, d, k)
        for impl, fn in WORKLOADS[name](x, codes).items():
            floor = repeats if (n, d, k) == HEADLINE else min_repeats  # the targets' shape always gets them all
            stats = time_fn(fn, repeats, budget_s, floor)
            rows.append({"workload": name, "impl": impl, "n": n, "d": d, "k": k, "time": stats})
            print(f"{name:8s} {impl:24s} N={n:7d} D={d:3d} K={k:4d}: {stats['median'] * 1e3:10.2f} ms "
                  f"(n={stats['n']})", flush=True)
        if name == "kmeans":
            add_kmeans_quality(rows[-2:], x, codes.shape[0])
        del x, codes
        gc.collect()
    return rows


def add_kmeans_quality(rows: list[dict[str, Any]], x: torch.Tensor, k: int) -> None:
    """Mean squared distance to the nearest center of each result: speed means little without quality."""
    fns = kmeans_fns(x, x[:k])
    for row in rows:
        _, dist = nearest_code(x, fns[row["impl"]](), return_distance=True)
        row["mse"] = float(dist.double().mean())


# --- peak memory, in a child process ------------------------------------------------------------

def _status_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def peak_extra_bytes(fn: Callable[[], Any]) -> int:
    """Peak resident memory above the level before one run (after a warm-up run)."""
    fn()
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    base = _status_kb("VmRSS")
    fn()
    return (_status_kb("VmHWM") - base) * 1024


def memory_worker(spec: dict[str, Any]) -> list[dict[str, Any]]:
    torch.set_num_threads(THREADS)
    rows = []
    for name, shapes in spec.items():
        for n, d, k in shapes:
            x, codes = make_data(n, d, k)
            for impl, fn in WORKLOADS[name](x, codes).items():
                rows.append({"workload": name, "impl": impl, "n": n, "d": d, "k": k,
                             "peak_extra_bytes": peak_extra_bytes(fn)})
            del x, codes
            gc.collect()
    return rows


def measure_memory(spec: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    proc = subprocess.run([sys.executable, __file__, "--memory-worker", json.dumps(spec)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return [], proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


def attach_memory(results: list[dict[str, Any]], memory: list[dict[str, Any]]) -> None:
    key = lambda r: (r["workload"], r["impl"], r["n"], r["d"], r["k"])  # noqa: E731
    peaks = {key(m): m["peak_extra_bytes"] for m in memory}
    for row in results:
        row["peak_extra_bytes"] = peaks.get(key(row))


# --- targets ------------------------------------------------------------------------------------

def _find(results: list[dict[str, Any]], workload: str, impl: str, shape: tuple[int, int, int]) -> dict[str, Any]:
    n, d, k = shape
    return next(r for r in results if (r["workload"], r["impl"], r["n"], r["d"], r["k"]) == (workload, impl, n, d, k))


def _ratio(results: list[dict[str, Any]], workload: str, num: str, den: str,
           shape: tuple[int, int, int]) -> dict[str, float]:
    """num/den time ratio from the medians (the target's value) and from the fastest runs (robust to load)."""
    a, b = (_find(results, workload, impl, shape)["time"] for impl in (num, den))
    return {"median": a["median"] / b["median"], "min": a["min"] / b["min"]}


def target(name: str, value: float | dict[str, float], op: str, threshold: float, shape: Any,
           note: str) -> dict[str, Any]:
    ratio = value if isinstance(value, dict) else {"median": value, "min": None}
    passed = ratio["median"] >= threshold if op == ">=" else ratio["median"] <= threshold
    return {"name": name, "value": ratio["median"], "value_from_min": ratio["min"], "op": op,
            "threshold": threshold, "passed": bool(passed), "shape": shape, "note": note}


def speed_targets(results: list[dict[str, Any]], grid: list[tuple[int, int, int]],
                  diag_shape: tuple[int, int, int]) -> list[dict[str, Any]]:
    ratios = {s: _ratio(results, "assign", "vqstudy", "matmul", s) for s in grid}
    worst = max(ratios, key=lambda s: ratios[s]["median"])
    passing = sum(r["median"] <= 1.5 for r in ratios.values())
    return [
        target("training step speed-up over vector-quantize-pytorch",
               _ratio(results, "train", "vector-quantize-pytorch", "vqstudy", HEADLINE), ">=", 5.0, HEADLINE,
               "library time / vqstudy time"),
        target("assignment time / bare matmul (headline shape)", ratios[HEADLINE], "<=", 1.5, HEADLINE,
               "nearest_code time / (x @ C.T) time"),
        target("assignment time / bare matmul (worst grid shape)", ratios[worst], "<=", 1.5, worst,
               f"{passing} of {len(ratios)} grid shapes within 1.5x (medians)"),
        target("diagnose time / one nearest_code pass",
               _ratio(results, "diagnose", "vqstudy.diagnose", "vqstudy.nearest_code", diag_shape), "<=", 3.0,
               diag_shape, "diagnose with labels (all metrics) / nearest_code, same data"),
    ]


def memory_target(results: list[dict[str, Any]], grid: list[tuple[int, int, int]]) -> list[dict[str, Any]]:
    """Growth of nearest_code's peak from N=16384 to 65536 as a share of what a full N x K matrix would add."""
    shares = {}
    for n, d, k in grid:
        if n != 65536 or (16384, d, k) not in grid:
            continue
        big, small = (_find(results, "assign", "vqstudy", s).get("peak_extra_bytes") for s in ((n, d, k), (16384, d, k)))
        if big is None or small is None:
            continue
        shares[(n, d, k)] = (big - small) / ((n - 16384) * k * 4)
    if not shares:
        return []
    worst = max(shares, key=shares.get)
    return [target("assignment memory growth N=16384->65536 / full-matrix growth", shares[worst], "<=", 0.1, worst,
                   f"worst of {len(shares)} (D, K) pairs; a full distance matrix would make this 1.0")]


def all_targets(results: list[dict[str, Any]], cfg: dict[str, Any]) -> list[dict[str, Any]]:
    grid = [tuple(s) for s in cfg["grid"]]
    return speed_targets(results, grid, tuple(cfg["diagnose"])) + memory_target(results, grid)


def rerender(out: Path, book: Path) -> None:
    """Recompute the targets from stored measurements and re-render, without measuring again."""
    data = json.loads(out.read_text())
    data["targets"] = all_targets(data["results"], data["config"])
    write_json_atomic(data, out)
    perf_report.render(data, book)


def missed_profiles(targets: list[dict[str, Any]], diag_shape: tuple[int, int, int]) -> dict[str, str]:
    """A torch.profiler table for each missed speed target (and for vqstudy's k-means, always)."""
    tables: dict[str, str] = {}
    for t in targets:
        if t["passed"] or "memory" in t["name"]:
            continue
        shape = tuple(t["shape"])
        workload = "diagnose" if "diagnose" in t["name"] else "train" if "training" in t["name"] else "assign"
        x, codes = make_data(*shape)
        for impl, fn in WORKLOADS[workload](x, codes).items():
            tables[f"{workload} {impl} N={shape[0]} D={shape[1]} K={shape[2]}"] = profile_table(fn)
    x, codes = make_data(*KMEANS_PROFILE)
    tables["kmeans vqstudy N={} D={} K={}".format(*KMEANS_PROFILE)] = profile_table(kmeans_fns(x, codes)["vqstudy"])
    return tables


# --- machine facts and output -------------------------------------------------------------------

def machine_facts() -> dict[str, Any]:
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    return {"cpu": cpu.group(1).strip() if cpu else platform.processor(), "logical_cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "vector_quantize_pytorch": version("vector-quantize-pytorch"), "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average_1_5_15min": [round(v, 2) for v in os.getloadavg()]}


def write_json_atomic(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def run(mode: str) -> dict[str, Any]:
    cfg = MODES[mode]
    started = time.time()
    gate_rows = gate(cfg["grid"])
    if not all(r["passed"] for r in gate_rows):
        return {"gate": gate_rows, "gate_passed": False}
    results = (measure_workload("assign", cfg["grid"], cfg["repeats"], cfg["budget_s"])
               + measure_workload("train", cfg["grid"], cfg["repeats"], cfg["budget_s"])
               + measure_workload("kmeans", cfg["kmeans"], cfg["slow_repeats"], cfg["slow_budget_s"], 1)
               + measure_workload("diagnose", [cfg["diagnose"]], cfg["slow_repeats"], cfg["slow_budget_s"]))
    facts_before = machine_facts()
    memory, memory_error = measure_memory({"assign": cfg["grid"], "train": [HEADLINE],
                                           "kmeans": [HEADLINE] if HEADLINE in cfg["kmeans"] else cfg["kmeans"][:1],
                                           "diagnose": [cfg["diagnose"]]})
    attach_memory(results, memory)
    targets = all_targets(results, cfg)
    return {"gate": gate_rows, "gate_passed": True, "results": results, "targets": targets,
            "profiles": missed_profiles(targets, cfg["diagnose"]), "memory_error": memory_error,
            "config": {"mode": mode, "threads": THREADS, "ema_decay": EMA_DECAY, "beta": BETA,
                       "kmeans_iters": KMEANS_ITERS, "chunk_size": 8192, "headline": HEADLINE, **cfg},
            "machine": {**facts_before, "load_average_at_end": machine_facts()["load_average_1_5_15min"]},
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
            "duration_s": time.time() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small subset of shapes (a few minutes)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "performance.json")
    parser.add_argument("--book", type=Path, default=ROOT / "book", help="where performance.md and figures/ go")
    parser.add_argument("--rerender", action="store_true",
                        help="recompute targets from --out and re-render the page and figure; measure nothing")
    parser.add_argument("--memory-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    if args.memory_worker:
        print(json.dumps(memory_worker(json.loads(args.memory_worker))))
        return 0
    if args.rerender:
        rerender(args.out, args.book)
        return 0
    data = run("quick" if args.quick else "full")
    if not data["gate_passed"]:
        print("correctness gate failed: indices disagree beyond ties; nothing written", file=sys.stderr)
        return 1
    write_json_atomic(data, args.out)
    perf_report.render(data, args.book)
    for t in data["targets"]:
        print(f"{'PASS' if t['passed'] else 'MISS'} {t['name']}: {t['value']:.3g} (target {t['op']} {t['threshold']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
