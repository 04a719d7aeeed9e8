"""What the reproducible-numerics mode costs: the same training runs with and without the pins.

Run: ``.venv/bin/python benchmarks/bench_numerics.py [--rounds 5] [--out FILE]``.
Pinning is per process (it must precede torch's import), so every measurement
is a fresh process; the two arms alternate round by round, in rotating order,
so that load on the machine falls on both alike. Each process trains one
chapter-like run (the MLP of chapters 1-4, 1,500 steps) and one small
convolutional run (the real-data chapters' model family, on the digits) and
reports their training times; the ratio pinned/unpinned is the cost.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORKLOAD = r"""
import json, time
import vqstudy
from vqstudy import RunConfig, train
configs = {
    "mlp": RunConfig().replace(train={"steps": 1500, "eval_every": 1500}),
    "conv": RunConfig().replace(data={"name": "digits"}, model={"kind": "conv", "width": 32, "latent_dim": 8},
                                quantizer={"codebook_size": 64}, train={"steps": 300, "eval_every": 300}),
}
out = {}
for name, cfg in configs.items():
    started = time.perf_counter()
    train(cfg, progress=False)
    out[name] = time.perf_counter() - started
print(json.dumps(out))
"""


def measure(pinned: bool) -> dict[str, float]:
    env = dict(os.environ, VQSTUDY_REPRODUCIBLE="1" if pinned else "0")
    out = subprocess.run([sys.executable, "-c", WORKLOAD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--out", type=Path, help="write the summary as JSON here")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    times: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    load_before = os.getloadavg()[0]
    for r in range(args.rounds):
        for pinned in ((True, False) if r % 2 == 0 else (False, True)):
            times[pinned].append(measure(pinned))
            print(f"round {r + 1} {'pinned' if pinned else 'unpinned'}: {times[pinned][-1]}", flush=True)
    summary = {"rounds": args.rounds, "load_average_before": load_before, "cpu_count": os.cpu_count(),
               "date": time.strftime("%Y-%m-%d")}
    for name in ("mlp", "conv"):
        pinned = statistics.median(t[name] for t in times[True])
        unpinned = statistics.median(t[name] for t in times[False])
        ratios = sorted(p[name] / u[name] for p, u in zip(times[True], times[False]))
        summary[name] = {"pinned_s": round(pinned, 2), "unpinned_s": round(unpinned, 2),
                         "ratio_median": round(statistics.median(ratios), 2),
                         "ratio_range": [round(ratios[0], 2), round(ratios[-1], 2)]}
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
