"""What ten seeds cost when trained together: one seed alone against S seeds batched (``vqstudy.seedbatch``).

Run: ``VQSTUDY_REPRODUCIBLE=1 .venv/bin/python benchmarks/bench_seedbatch.py [--seeds 10] [--steps 300]
[--rounds 5] [--out FILE]``. The arms alternate round by round in rotating order, in one process, so that
load on the machine falls on both alike; the cost is the median over rounds of (S seeds batched) / (one
seed), with the range over rounds. The workload is the chapters' MLP model (width 128, batch 256, the
plain quantizer from a small random init) with no evaluation during training. Whether the numbers are
pinned is recorded: the batched and single runs are bit for bit equal only under the pinned numerics.
After the timed rounds, one run of each arm under torch's profiler splits its time into matrix products,
the optimizer, the other kernels, and what no kernel accounts for (Python, autograd, dispatch): batching
shares only the last, so the kernels' part of S batched seeds bounds what batching can save. Written with
``--out results/seed_batching.json``, the result is shown on the book's reproducibility page.

``--model conv`` asks whether batching would pay for chapter 9's conv VQ-VAE (MNIST, batch 128), which
``vqstudy.seedbatch`` does not batch. It times a training step of one model on a batch of S x 128 images
against one on 128 images (each step's time is the difference between runs of 2n and n steps, so set-up and
evaluation cancel). S seeds batched do the arithmetic of the larger batch and pay the dispatch once, as it
does, so that ratio is the least that S batched seeds could cost: when it is close to S, batching cannot pay.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from vqstudy import numerics

numerics.pin_from_environment()

from vqstudy.config import RunConfig  # noqa: E402  (after the pins)
from vqstudy.io import write_atomic  # noqa: E402
from vqstudy.seedbatch import train_seeds  # noqa: E402
from vqstudy.train import train  # noqa: E402


def configs(seeds: int, steps: int) -> list[RunConfig]:
    base = RunConfig().replace(train={"steps": steps, "eval_every": steps},
                               quantizer={"init": "normal", "init_scale": 1e-3})
    return [base.replace(train={"seed": s}) for s in range(seeds)]


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def alternate(arms: dict, rounds: int) -> dict:
    """Call the two arms (each returns its time in seconds) round by round, the order reversed every other
    round; the median time of each and the median and range of the per-round ratios second / first."""
    names = list(arms)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            times[name].append(arms[name]())
    ratios = sorted(b / a for a, b in zip(times[names[0]], times[names[1]]))
    return {"rounds": rounds, "pinned": numerics.active(),
            "seconds": {name: statistics.median(v) for name, v in times.items()},
            "ratio": statistics.median(ratios), "ratio_min": ratios[0], "ratio_max": ratios[-1]}


# What a training step's time goes to, by the kind of work: the classes of :func:`kernel_seconds`.
MATRIX_PRODUCTS = frozenset({"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"})
KERNEL_CLASSES = ("matrix products", "optimizer", "other kernels", "rest")   # as vqstudy.book.cost shows them


def kernel_class(name: str) -> str | None:
    """The class of a profiled operator; None for ranges that are not kernels (autograd nodes, Python
    functions), whose self time counts as overhead."""
    if name in MATRIX_PRODUCTS:
        return "matrix products"
    if name.startswith("aten::") and "adam" in name:
        return "optimizer"
    return "other kernels" if name.startswith("aten::") else None


def kernel_seconds(events: list[tuple[str, float]], wall: float) -> dict[str, float]:
    """Self CPU seconds of the ``(operator, seconds)`` events by :data:`KERNEL_CLASSES`; the part of ``wall``
    no kernel accounts for (Python, the autograd engine, the run's set-up) is the last, "rest". Self times exclude nested operators, so nothing counts twice."""
    out = dict.fromkeys(KERNEL_CLASSES, 0.0)
    for name, seconds in events:
        cls = kernel_class(name)
        if cls is not None:
            out[cls] += seconds
    out[KERNEL_CLASSES[-1]] = max(wall - sum(out.values()), 0.0)
    return out


def profiled(fn) -> dict[str, float]:
    """:func:`kernel_seconds` of one call of ``fn`` under torch's profiler (which slows the call a little)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        wall = timed(fn)
    return kernel_seconds([(e.key, e.self_cpu_time_total / 1e6) for e in prof.key_averages()], wall)


def measure(seeds: int, steps: int, rounds: int) -> dict:
    """The time ratio (S seeds batched) / (one seed) over interleaved rounds, then one profiled run of each arm:
    the kernels that do the arithmetic take about S times as long batched, and only the rest can be shared."""
    runs = configs(seeds, steps)
    calls = {"one seed": lambda: train(runs[0], progress=False),
             f"{seeds} seeds batched": lambda: train_seeds(runs, progress=False)}
    arms = {name: (lambda call=call: timed(call)) for name, call in calls.items()}
    for arm in arms.values():  # warm-up
        arm()
    load_before = os.getloadavg()[0]
    result = alternate(arms, rounds)
    kernels = {name: profiled(call) for name, call in calls.items()}
    return {"seeds": seeds, "steps": steps, **result, "per_seed_speedup": seeds / result["ratio"],
            "kernel_seconds": kernels, "load_average_before": load_before, "cpu_count": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d")}


def conv_step_ceiling(seeds: int, steps: int, rounds: int) -> dict:
    """Per-step time of chapter 9's tokenizer at batch ``seeds`` x 128 against batch 128 (see the docstring)."""
    from vqstudy.chapters.real_images import PLANS, SHRUNK_MNIST, tokenizer_config

    base = tokenizer_config(PLANS["full"], 1024, SHRUNK_MNIST, 0).replace(quantizer={"init": "normal"})
    batch = base.train.batch_size

    def step_time(batch_size: int) -> float:
        run = lambda n: timed(lambda: train(base.replace(train={"steps": n, "eval_every": n,  # noqa: E731
                                                                "batch_size": batch_size}), progress=False))
        return (run(2 * steps) - run(steps)) / steps

    arms = {"one seed": lambda: step_time(batch), f"batch x {seeds}": lambda: step_time(seeds * batch)}
    result = alternate(arms, rounds)
    step_seconds = result.pop("seconds")
    return {"model": "conv", "seeds": seeds, "steps": steps, **result, "step_seconds": step_seconds,
            "per_seed_speedup": seeds / result["ratio"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", choices=("mlp", "conv"), default="mlp",
                        help="mlp: batched seeds against one; conv: the least S batched conv seeds could cost")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args()
    for name in ("seeds", "steps", "rounds"):
        if getattr(args, name) < (2 if name == "seeds" else 1):
            parser.error(f"--{name} must be at least {2 if name == 'seeds' else 1}")
    if args.model == "conv":
        result = conv_step_ceiling(args.seeds, args.steps, args.rounds)
        print(f"a conv step on {result['seeds']}x the batch costs {result['ratio']:.2f}x one (range "
              f"{result['ratio_min']:.2f}-{result['ratio_max']:.2f} over {result['rounds']} rounds; pinned: "
              f"{result['pinned']}): {result['seeds']} batched seeds could cost no less")
    else:
        result = measure(args.seeds, args.steps, args.rounds)
        print(f"{result['seeds']} seeds batched cost {result['ratio']:.2f}x one seed "
              f"(range {result['ratio_min']:.2f}-{result['ratio_max']:.2f} over {result['rounds']} rounds; "
              f"pinned: {result['pinned']})")
        for arm, seconds in result["kernel_seconds"].items():
            print(f"  {arm} (profiled): " + ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items()))
    if args.out:
        write_atomic(args.out, json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
