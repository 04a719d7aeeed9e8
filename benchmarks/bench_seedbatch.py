"""What ten seeds cost when trained together: one seed alone against S seeds batched (``vqstudy.seedbatch``).

Run: ``VQSTUDY_REPRODUCIBLE=1 .venv/bin/python benchmarks/bench_seedbatch.py [--seeds 10] [--steps 300]
[--rounds 5] [--out FILE]``. The arms alternate round by round in rotating order, in one process, so that
load on the machine falls on both alike; the cost is the median over rounds of (S seeds batched) / (one
seed), with the range over rounds. The workload is the chapters' MLP model (width 128, batch 256, the
plain quantizer from a small random init) with no evaluation during training. Whether the numbers are
pinned is recorded: the batched and single runs are bit for bit equal only under the pinned numerics.
"""
from __future__ import annotations

import argparse
import json
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


def measure(seeds: int, steps: int, rounds: int) -> dict:
    runs = configs(seeds, steps)
    arms = {"one seed": lambda: train(runs[0], progress=False),
            f"{seeds} seeds batched": lambda: train_seeds(runs, progress=False)}
    names = list(arms)
    for name in names:  # warm-up
        arms[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            times[name].append(timed(arms[name]))
    ratios = sorted(b / a for a, b in zip(times[names[0]], times[names[1]]))
    return {"seeds": seeds, "steps": steps, "rounds": rounds, "pinned": numerics.active(),
            "seconds": {name: statistics.median(v) for name, v in times.items()},
            "ratio": statistics.median(ratios), "ratio_min": ratios[0], "ratio_max": ratios[-1],
            "per_seed_speedup": seeds / statistics.median(ratios)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args()
    for name in ("seeds", "steps", "rounds"):
        if getattr(args, name) < (2 if name == "seeds" else 1):
            parser.error(f"--{name} must be at least {2 if name == 'seeds' else 1}")
    result = measure(args.seeds, args.steps, args.rounds)
    print(f"{result['seeds']} seeds batched cost {result['ratio']:.2f}x one seed "
          f"(range {result['ratio_min']:.2f}-{result['ratio_max']:.2f} over {result['rounds']} rounds; "
          f"pinned: {result['pinned']})")
    if args.out:
        write_atomic(args.out, json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
