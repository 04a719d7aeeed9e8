"""Speed of vqstudy's quantizer, measured fairly: interleaved arms, FAISS and a true floor as anchors.

Run: ``python benchmarks/bench_quantizer.py [--quick] [--threads T] [--out results/performance.json]``
(``--rerender`` recomputes the targets from the stored JSON and re-renders the page without measuring).

Fairness. Every workload (assignment, training step, k-means, diagnostics) is a set of *arms* timed in one
process, round-robin: after a warm-up of every arm, each of R >= 7 rounds runs every arm once, the order
rotated by one place per round, so a change of machine load lands on all arms alike; a call shorter than
0.2 s is repeated until one timing lasts that long, and its time per call is reported. A ratio is taken within
each round (arm A's time / arm B's time in the same round) and reported as the median of those paired ratios
with their interquartile range and min–max. Absolute times still carry the machine's load (see the load
average recorded before any timing); the ratios are what the targets judge.

Anchors for code assignment (N vectors, K codes, dimension D):

- ``floor``: the product x @ C.T computed chunk by chunk into one reused buffer (``torch.mm(..., out=)``), the
  chunk being nearest_code's. An exact search must know every one of the N x K distances (any code it skips
  could be the nearest), and on a CPU the fastest way to get them is this BLAS product; the buffer's reuse
  removes the allocation and the first-touch page faults a fresh N x K result pays. Anything that also finds
  the argmin therefore costs at least this much, up to the fusion tricks that avoid writing the product
  out at all (FAISS does that; it can beat the floor where the argmin, not the product, dominates: small D).
- ``reference``: the minimal chunked ``addmm`` + ``argmin`` a reader would write, with no input checks.
- ``faiss``: FAISS's exact flat L2 index (``faiss.IndexFlatL2``), the standard exact nearest-neighbour
  search on a CPU, with as many OpenMP threads as torch has (``faiss.omp_set_num_threads``); the index is
  built inside the timed call, as a training loop whose codebook moves would have to.
- ``vqstudy``: ``nearest_code`` on its default torch path, the one training uses;
  ``vqstudy (faiss backend)``: ``nearest_code(..., backend="faiss")``, for assignments needing no gradient.

The training step is vqstudy's ``VectorQuantizer`` against vector-quantize-pytorch's ``VectorQuantize``, both
straight-through with EMA updates; the library's settings are asserted after construction, and before any
timing both take one step from the same state and must agree on indices, codebook and quantized output.
The JSON is written atomically, then ``perf_report.py`` renders ``book/performance.md`` and its figure.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

import faiss
import numpy as np
import torch

from vqstudy.diagnostics import diagnose
from vqstudy.quantize import VectorQuantizer, kmeans, nearest_code
from vector_quantize_pytorch import VectorQuantize

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_report  # noqa: E402  (sibling module; this file runs as a script)

ROOT = Path(__file__).resolve().parents[1]
THREADS = 2  # torch's and FAISS's thread count unless --threads says otherwise
CHUNK = 8192  # nearest_code's default chunk, also the floor's and the reference's
EMA_DECAY, BETA, EPS, KMEANS_ITERS = 0.99, 0.25, 1e-5, 20
FULL_GRID = [(n, d, k) for n in (16384, 65536) for d in (16, 64, 256) for k in (256, 1024, 4096)]
# k-means is the slowest workload: MNIST's 7x7 tokens (220,500 x 16) at two K, and one D = 64 shape.
FULL_KMEANS = [(220500, 16, 1024), (220500, 16, 4096), (65536, 64, 1024)]
MODES = {
    "full": dict(grid=FULL_GRID, train=FULL_GRID, kmeans=FULL_KMEANS,
                 diagnose=[(100_000, 64, 1024), (1_000_000, 64, 4096)], rounds=9),
    "quick": dict(grid=[(16384, 16, 1024), (16384, 64, 1024), (16384, 256, 1024)],
                  train=[(16384, 64, 1024)], kmeans=[(16384, 16, 256)], diagnose=[(100_000, 64, 1024)], rounds=7),
}
SHARED_MACHINE_NOTE = ("Measured on a shared machine while other jobs ran (see the load averages): the "
                       "interleaved rounds make the ratios fair, but absolute times are inflated.")
IDLE_MACHINE_NOTE = "Measured on an otherwise idle machine (see the load averages before and after timing)."
BUSY_LOAD = 0.5  # a 1-minute load average from other jobs above this (before any timing) counts as shared


def machine_note(load_before: list[float]) -> str:
    """What the page says about the machine's load, from the load average recorded before any timing."""
    return SHARED_MACHINE_NOTE if load_before[0] > BUSY_LOAD else IDLE_MACHINE_NOTE


# --- data and the two quantizers configured like for like ---------------------------------------

def make_data(n: int, d: int, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian vectors and a codebook of k of them plus noise (so every code gets used)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    codes = x[torch.randperm(n, generator=gen)[:k]] + 0.05 * torch.randn(k, d, generator=gen)
    return x, codes


def library_quantizer(codebook: torch.Tensor) -> VectorQuantize:
    """VectorQuantize configured as vqstudy's EMA quantizer, its settings asserted after construction."""
    k, d = codebook.shape
    vq = VectorQuantize(dim=d, codebook_size=k, decay=EMA_DECAY, eps=EPS, kmeans_init=False,
                        rotation_trick=False, commitment_weight=BETA, threshold_ema_dead_code=0)
    cb = vq._codebook
    settings = {"decay": cb.decay, "eps": cb.eps, "ema_update": cb.ema_update,
                "no k-means init (initted)": bool(cb.initted), "rotation_trick": vq.rotation_trick,
                "threshold_ema_dead_code": cb.threshold_ema_dead_code,
                "has_dead_code_replacement": cb.has_dead_code_replacement,
                "learnable_codebook": cb.learnable_codebook, "commitment_weight": vq.commitment_weight}
    wanted = {"decay": EMA_DECAY, "eps": EPS, "ema_update": True, "no k-means init (initted)": True,
              "rotation_trick": False, "threshold_ema_dead_code": 0, "has_dead_code_replacement": False,
              "learnable_codebook": False, "commitment_weight": BETA}
    wrong = {key: (settings[key], value) for key, value in wanted.items() if settings[key] != value}
    if wrong:
        raise RuntimeError(f"vector-quantize-pytorch is not configured like vqstudy (got, wanted): {wrong}")
    with torch.no_grad():  # same EMA state as VectorQuantizer.set_codebook: sums = codes, counts = 1
        vq.codebook = codebook
        cb.embed_avg.copy_(codebook[None])
        cb.cluster_size.fill_(1.0)
    return vq


def vqstudy_quantizer(codebook: torch.Tensor) -> VectorQuantizer:
    k, d = codebook.shape
    vq = VectorQuantizer(k, d, beta=BETA, update="ema", ema_decay=EMA_DECAY, eps=EPS, chunk_size=CHUNK)
    vq.set_codebook(codebook)
    return vq


# --- the arms: each workload returns {arm: zero-argument callable} ------------------------------

def chunked_floor(x: torch.Tensor, codes: torch.Tensor, chunk: int = CHUNK) -> Callable[[], None]:
    """x @ C.T chunk by chunk into one reused buffer: a lower bound for an exact search (module docstring)."""
    buf = torch.empty(min(chunk, x.shape[0]), codes.shape[0])
    ct = codes.t()

    def run() -> None:
        for start in range(0, x.shape[0], chunk):
            rows = x[start:start + chunk]
            torch.mm(rows, ct, out=buf[:rows.shape[0]])
    return run


def chunked_reference(x: torch.Tensor, codes: torch.Tensor, chunk: int = CHUNK) -> Callable[[], torch.Tensor]:
    """The minimal exact search: per chunk, addmm(||c||^2, x, C.T, alpha=-2) and argmin."""
    def run() -> torch.Tensor:
        c_sq, ct = codes.pow(2).sum(1), codes.t()
        return torch.cat([torch.addmm(c_sq, x[s:s + chunk], ct, alpha=-2.0).argmin(1)
                          for s in range(0, x.shape[0], chunk)])
    return run


def faiss_search(x: torch.Tensor, codes: torch.Tensor) -> Callable[[], torch.Tensor]:
    """faiss.IndexFlatL2, built and searched (k = 1) inside the call."""
    xn, cn = x.numpy(), codes.numpy()

    def run() -> torch.Tensor:
        index = faiss.IndexFlatL2(cn.shape[1])
        index.add(cn)
        return torch.from_numpy(index.search(xn, 1)[1][:, 0])
    return run


def assign_fns(x: torch.Tensor, codes: torch.Tensor) -> dict[str, Callable[[], Any]]:
    return {"vqstudy": lambda: nearest_code(x, codes),
            "vqstudy (faiss backend)": lambda: nearest_code(x, codes, backend="faiss"),
            "faiss": faiss_search(x, codes), "reference": chunked_reference(x, codes),
            "floor": chunked_floor(x, codes)}


def _loss_step(forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
               x: torch.Tensor) -> Callable[[], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Forward, then backward of mean(q^2) + quantizer loss to a fresh leaf input (no grad accumulation)."""
    def step():
        leaf = x.detach().requires_grad_()
        quantized, indices, loss = forward(leaf)
        (quantized.square().mean() + loss).backward()
        return quantized.detach(), indices, leaf.grad
    return step


def train_steps(x: torch.Tensor, codes: torch.Tensor, modules: tuple[VectorQuantizer, VectorQuantize] | None = None
                ) -> dict[str, Callable[[], Any]]:
    ours, lib = modules or (vqstudy_quantizer(codes).train(), library_quantizer(codes).train())

    def ours_forward(leaf: torch.Tensor):
        out = ours(leaf)
        return out.quantized, out.indices, out.loss

    def lib_forward(leaf: torch.Tensor):
        quantized, indices, loss = lib(leaf[None])
        return quantized[0], indices[0], loss
    return {"vqstudy": _loss_step(ours_forward, x), "vector-quantize-pytorch": _loss_step(lib_forward, x)}


def train_fns(x: torch.Tensor, codes: torch.Tensor) -> dict[str, Callable[[], Any]]:
    return {**train_steps(x, codes), "floor": chunked_floor(x, codes)}


def faiss_kmeans(x: torch.Tensor, k: int, iters: int = KMEANS_ITERS, seed: int = 0) -> torch.Tensor:
    """faiss.Kmeans with k-means++ seeding on all rows (no subsampling), ``iters`` Lloyd steps."""
    km = faiss.Kmeans(x.shape[1], k, niter=iters, seed=seed, max_points_per_centroid=x.shape[0],
                      init_method=faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS)
    km.train(x.numpy())
    return torch.from_numpy(km.centroids.copy())


def kmeans_fns(x: torch.Tensor, codes: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    k = codes.shape[0]
    return {"vqstudy": lambda: kmeans(x, k, iters=KMEANS_ITERS),
            "vqstudy (faiss backend)": lambda: kmeans(x, k, iters=KMEANS_ITERS, backend="faiss"),
            "faiss": lambda: faiss_kmeans(x, k)}


def diagnose_fns(x: torch.Tensor, codes: torch.Tensor) -> dict[str, Callable[[], Any]]:
    idx, labels = nearest_code(x, codes), torch.arange(x.shape[0]) % 10
    return {"vqstudy.diagnose": lambda: diagnose(x, idx, codes, labels),
            "vqstudy.nearest_code": lambda: nearest_code(x, codes)}


WORKLOADS = {"assign": assign_fns, "train": train_fns, "kmeans": kmeans_fns, "diagnose": diagnose_fns}


# --- interleaved timing -------------------------------------------------------------------------

def spread(values: list[float] | np.ndarray) -> dict[str, Any]:
    """Median, quartiles and range of a sample."""
    v = np.asarray(values, dtype=float)
    return {"median": float(np.median(v)), "q1": float(np.percentile(v, 25)), "q3": float(np.percentile(v, 75)),
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


MIN_SAMPLE_S = 0.2  # one timing of an arm repeats its call until about this long (a few-ms call alone is noise)


def repeats_for(seconds_per_call: float, min_sample_s: float = MIN_SAMPLE_S) -> int:
    """Calls per timing so that one timing lasts about ``min_sample_s`` (one call when a call is that long)."""
    return max(1, math.ceil(min_sample_s / max(seconds_per_call, 1e-9)))


def interleave(fns: dict[str, Callable[[], Any]], rounds: int, warmup_cheap_s: float = 1.0,
               min_sample_s: float = MIN_SAMPLE_S) -> dict[str, list[float]]:
    """Seconds per call of every arm in each of ``rounds`` rounds, order rotated by one arm per round.

    Warm-up: every arm once, a second time when its first call took under ``warmup_cheap_s``; the last
    warm-up call sets how many calls one timing repeats (:func:`repeats_for`), and a round's time for an
    arm is its timing divided by that count.
    """
    if rounds < 1:
        raise ValueError(f"invalid rounds={rounds!r}: must be a positive integer")
    names = list(fns)
    repeats = {}
    for name in names:
        start = time.perf_counter()
        fns[name]()
        took = time.perf_counter() - start
        if took < warmup_cheap_s:
            start = time.perf_counter()
            fns[name]()
            took = time.perf_counter() - start
        repeats[name] = repeats_for(took, min_sample_s)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            for _ in range(repeats[name]):
                fns[name]()
            times[name].append((time.perf_counter() - start) / repeats[name])
    return times


def paired_ratio(times: dict[str, list[float]], num: str, den: str) -> dict[str, Any]:
    """Spread of the per-round ratios num/den (both timed in the same round)."""
    return spread(np.asarray(times[num]) / np.asarray(times[den]))


def measure(workload: str, shapes: list[tuple[int, int, int]], rounds: int) -> list[dict[str, Any]]:
    rows = []
    for n, d, k in shapes:
        x, codes = make_data(n, d, k)
        fns = WORKLOADS[workload](x, codes)
        times = interleave(fns, rounds)
        row = {"workload": workload, "n": n, "d": d, "k": k, "times": times,
               "arms": {name: spread(t) for name, t in times.items()}}
        if workload == "kmeans":
            row["inertia"] = {name: kmeans_inertia(x, fn()) for name, fn in fns.items()}
        rows.append(row)
        print(f"{workload:8s} N={n:7d} D={d:3d} K={k:4d}: " + ", ".join(
            f"{name} {s['median'] * 1e3:.1f} ms" for name, s in row["arms"].items()), flush=True)
        del x, codes, fns
        gc.collect()
    return rows


def kmeans_inertia(x: torch.Tensor, centers: torch.Tensor) -> float:
    """Mean squared distance of each vector to its nearest center: speed means little without quality."""
    return float(nearest_code(x, centers, return_distance=True)[1].double().mean())


# --- correctness, before any timing -------------------------------------------------------------

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


def assignment_gate(grid: list[tuple[int, int, int]]) -> list[dict[str, Any]]:
    """Every assignment arm's indices against vqstudy's, per shape."""
    rows = []
    for n, d, k in grid:
        x, codes = make_data(n, d, k)
        fns = assign_fns(x, codes)
        ours = fns["vqstudy"]()
        for arm in ("vqstudy (faiss backend)", "faiss", "reference"):
            row = {"n": n, "d": d, "k": k, "arm": arm, **agreement(x, codes, ours, fns[arm]())}
            row["passed"] = row["agree_ties_aside"] >= 0.999
            rows.append(row)
            print(f"gate N={n} D={d} K={k} {arm}: agree {row['agree']:.5f} (ties aside {row['agree_ties_aside']:.5f})",
                  flush=True)
    return rows


def step_check(n: int, d: int, k: int) -> dict[str, Any]:
    """One training step of both quantizers from the same state: indices, codebook, quantized output, input grad."""
    x, codes = make_data(n, d, k)
    ours, lib = vqstudy_quantizer(codes).train(), library_quantizer(codes).train()
    fns = train_steps(x, codes, (ours, lib))
    (q_ours, i_ours, g_ours), (q_lib, i_lib, g_lib) = fns["vqstudy"](), fns["vector-quantize-pytorch"]()
    row = {"n": n, "d": d, "k": k, **agreement(x, codes, i_ours, i_lib),
           "codebook_max_abs_diff": float((ours.codebook.detach() - lib.codebook.detach().reshape(k, d)).abs().max()),
           "quantized_max_abs_diff": float((q_ours - q_lib).abs().max()),
           "input_grad_max_abs_diff": float((g_ours - g_lib).abs().max())}
    row["passed"] = (row["agree_ties_aside"] >= 0.999 and row["codebook_max_abs_diff"] <= 1e-4
                     and row["quantized_max_abs_diff"] <= 1e-4)
    print(f"step check N={n} D={d} K={k}: indices {row['agree']:.5f}, codebook gap {row['codebook_max_abs_diff']:.2g}, "
          f"quantized gap {row['quantized_max_abs_diff']:.2g}, input-grad gap {row['input_grad_max_abs_diff']:.2g}",
          flush=True)
    return row


# --- peak memory of one assignment, in a child process ------------------------------------------

def _status_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def peak_extra_bytes(fn: Callable[[], Any]) -> int:
    """Peak resident memory above the level before one call (after a warm-up call)."""
    fn()
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    base = _status_kb("VmRSS")
    fn()
    return (_status_kb("VmHWM") - base) * 1024


def memory_worker(shapes: list[list[int]]) -> list[dict[str, Any]]:
    """Peak extra memory of every assignment arm; run in a child whose allocator returns big blocks at once."""
    rows = []
    for n, d, k in shapes:
        x, codes = make_data(n, d, k)
        rows.append({"n": n, "d": d, "k": k,
                     "peak_extra_bytes": {arm: peak_extra_bytes(fn) for arm, fn in assign_fns(x, codes).items()}})
        del x, codes
        gc.collect()
    return rows


def measure_memory(shapes: list[tuple[int, int, int]]) -> tuple[list[dict[str, Any]], str | None]:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    proc = subprocess.run([sys.executable, __file__, "--threads", str(torch.get_num_threads()),
                           "--memory-worker", json.dumps(shapes)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return [], proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


# --- targets: one row per target and shape ------------------------------------------------------

def _target(name: str, shape: tuple[int, int, int], ratio: dict[str, Any], op: str, threshold: float,
            what: str) -> dict[str, Any]:
    passed = ratio["median"] >= threshold if op == ">=" else ratio["median"] <= threshold
    return {"name": name, "shape": list(shape), "ratio": ratio, "op": op, "threshold": threshold,
            "passed": bool(passed), "what": what}


TARGET_SPECS = [  # workload, name, numerator arm, denominator arm, op, threshold, applies to shape, what
    ("assign", "assignment vs FAISS", "vqstudy", "faiss", "<=", 1.1, lambda s: True,
     "nearest_code (torch path) time / faiss.IndexFlatL2 time"),
    ("assign", "assignment (faiss backend) vs FAISS", "vqstudy (faiss backend)", "faiss", "<=", 1.1,
     lambda s: True, "nearest_code(backend='faiss') time / faiss.IndexFlatL2 time"),
    ("assign", "assignment vs chunked floor", "vqstudy", "floor", "<=", 1.3, lambda s: s[1] >= 64,
     "nearest_code (torch path) time / chunked x @ C.T time (D >= 64)"),
    ("train", "training step vs chunked floor", "vqstudy", "floor", "<=", 2.0, lambda s: True,
     "vqstudy step time / chunked x @ C.T time"),
    ("train", "training step speed-up over vector-quantize-pytorch", "vector-quantize-pytorch", "vqstudy", ">=",
     6.0, lambda s: True, "library step time / vqstudy step time"),
    ("kmeans", "k-means vs FAISS", "vqstudy", "faiss", "<=", 2.0, lambda s: True,
     "vqstudy kmeans time / faiss.Kmeans time, same iterations, both k-means++"),
    ("kmeans", "k-means (faiss backend) vs FAISS", "vqstudy (faiss backend)", "faiss", "<=", 2.0, lambda s: True,
     "kmeans(backend='faiss') time / faiss.Kmeans time"),
    ("diagnose", "diagnose vs one assignment pass", "vqstudy.diagnose", "vqstudy.nearest_code", "<=", 3.0,
     lambda s: s[0] >= 100_000, "diagnose (all metrics, with labels) time / nearest_code time"),
]
MEMORY_BOUND = 1.5  # peak extra memory / (one chunk's K distances + the N indices)


def all_targets(results: list[dict[str, Any]], memory: list[dict[str, Any]]) -> list[dict[str, Any]]:
    targets = []
    for workload, name, num, den, op, threshold, applies, what in TARGET_SPECS:
        for row in results:
            shape = (row["n"], row["d"], row["k"])
            if row["workload"] == workload and applies(shape) and num in row["times"] and den in row["times"]:
                targets.append(_target(name, shape, paired_ratio(row["times"], num, den), op, threshold, what))
    for m in memory:
        allowed = min(CHUNK, m["n"]) * m["k"] * 4 + m["n"] * 8
        share = m["peak_extra_bytes"]["vqstudy"] / allowed
        targets.append(_target("assignment memory vs one chunk", (m["n"], m["d"], m["k"]),
                               {"median": share, "q1": None, "q3": None, "min": None, "max": None, "n": 1},
                               "<=", MEMORY_BOUND, "peak extra bytes / (chunk x K float32 + N int64 indices)"))
    return targets


# --- machine facts and output -------------------------------------------------------------------

def machine_facts() -> dict[str, Any]:
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    return {"cpu": cpu.group(1).strip() if cpu else platform.processor(), "logical_cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "faiss_threads": faiss.omp_get_max_threads(), "torch": torch.__version__,
            "faiss": faiss.__version__, "vector_quantize_pytorch": version("vector-quantize-pytorch"),
            "numpy": np.__version__, "python": platform.python_version(), "platform": platform.platform()}


def write_json_atomic(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def run(mode: str) -> dict[str, Any]:
    cfg = MODES[mode]
    load_before = [round(v, 2) for v in os.getloadavg()]  # other jobs only: nothing of ours has run yet
    started = time.time()
    gate_rows = assignment_gate(cfg["grid"])
    steps = [step_check(*s) for s in cfg["train"]]
    passed = all(r["passed"] for r in gate_rows + steps)
    data: dict[str, Any] = {"gate": gate_rows, "step_check": steps, "gate_passed": passed}
    if not passed:
        return data
    results = (measure("assign", cfg["grid"], cfg["rounds"]) + measure("train", cfg["train"], cfg["rounds"])
               + measure("kmeans", cfg["kmeans"], cfg["rounds"]) + measure("diagnose", cfg["diagnose"], cfg["rounds"]))
    memory, memory_error = measure_memory(cfg["grid"])
    return {**data, "results": results, "memory": memory, "memory_error": memory_error,
            "targets": all_targets(results, memory),
            "config": {"mode": mode, "threads": torch.get_num_threads(), "ema_decay": EMA_DECAY, "beta": BETA, "eps": EPS,
                       "kmeans_iters": KMEANS_ITERS, "chunk_size": CHUNK, "min_sample_s": MIN_SAMPLE_S, "memory_bound": MEMORY_BOUND, **cfg},
            "machine": {**machine_facts(), "load_average_before_1_5_15min": load_before,
                        "load_average_after_1_5_15min": [round(v, 2) for v in os.getloadavg()],
                        "note": machine_note(load_before)},
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
            "duration_s": time.time() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three assignment shapes, one of each other workload")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "performance.json")
    parser.add_argument("--book", type=Path, default=ROOT / "book", help="where performance.md and figures/ go")
    parser.add_argument("--rerender", action="store_true",
                        help="recompute targets from --out and re-render the page and figure; measure nothing")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help=f"torch and FAISS threads, the same for every arm (default {THREADS})")
    parser.add_argument("--memory-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"invalid --threads={args.threads}: must be a positive integer")
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    if args.memory_worker:
        print(json.dumps(memory_worker(json.loads(args.memory_worker))))
        return 0
    if args.rerender:
        data = json.loads(args.out.read_text())
        data["targets"] = all_targets(data["results"], data["memory"])
        write_json_atomic(data, args.out)
        perf_report.render(data, args.book)
        return 0
    data = run("quick" if args.quick else "full")
    if not data["gate_passed"]:
        print("correctness gate failed: indices or the EMA step disagree beyond ties; nothing written",
              file=sys.stderr)
        return 1
    write_json_atomic(data, args.out)
    perf_report.render(data, args.book)
    for t in data["targets"]:
        r = t["ratio"]
        spread_text = f" [IQR {r['q1']:.3g}-{r['q3']:.3g}]" if r["q1"] is not None else ""
        print(f"{'met   ' if t['passed'] else 'MISSED'} {t['name']} at {tuple(t['shape'])}: {r['median']:.3g}"
              f"{spread_text} (target {t['op']} {t['threshold']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
