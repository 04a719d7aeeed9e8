"""How long ``vqstudy diagnose`` takes, and how much memory it holds, on a large set of embeddings.

Writes ROWS x DIM float32 embeddings (a seeded Gaussian mixture, written in
chunks to a memory-mapped .npy, so creating them needs no more memory than
diagnosing them) and a K x DIM codebook into a scratch folder, runs
``vqstudy diagnose`` on them under ``/usr/bin/time -v`` (peak resident
memory, wall time), appends the measurement to a JSON file and deletes the
scratch files::

    nice -n 19 python benchmarks/diagnose_scale.py --rows 10000000 --scratch /tmp/diagnose-scale

The embeddings occupy ROWS x DIM x 4 bytes on disk (10 GB at 10^7 x 256).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def write_inputs(folder: Path, rows: int, dim: int, codes: int, seed: int = 0, chunk: int = 100_000) -> None:
    """A mixture of ``codes // 4`` Gaussian clusters in a 32-dimensional subspace plus isotropic noise."""
    rng = np.random.default_rng(seed)
    clusters = max(codes // 4, 1)
    basis = np.linalg.qr(rng.normal(size=(dim, 32)))[0]                      # (dim, 32) orthonormal
    centers = (rng.normal(size=(clusters, 32)) * 3.0) @ basis.T             # (clusters, dim)
    emb = np.lib.format.open_memmap(folder / "embeddings.npy", mode="w+", dtype=np.float32, shape=(rows, dim))
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        pick = rng.integers(clusters, size=n)
        emb[start:start + n] = centers[pick] + rng.normal(size=(n, dim)).astype(np.float32)
    emb.flush()
    del emb
    codebook = centers[rng.integers(clusters, size=codes)] + rng.normal(size=(codes, dim))
    np.save(folder / "codebook.npy", codebook.astype(np.float32))


def _time_field(stderr: str, name: str) -> str:
    match = re.search(rf"^\s*{re.escape(name)}:\s*(.+)$", stderr, re.MULTILINE)
    if not match:
        raise RuntimeError(f"/usr/bin/time printed no {name!r}:\n{stderr[-2000:]}")
    return match.group(1).strip()


def _seconds(clock: str) -> float:
    parts = [float(p) for p in clock.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


def measure(folder: Path, chunk_rows: int | None) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "vqstudy.cli", "diagnose", str(folder / "codebook.npy"),
           "--embeddings", str(folder / "embeddings.npy"), "--json", str(folder / "report.json")]
    if chunk_rows:
        cmd += ["--chunk-rows", str(chunk_rows)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"vqstudy diagnose failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    report = json.loads((folder / "report.json").read_text())["sections"][0]["metrics"]
    return {
        "wall_s": _seconds(_time_field(proc.stderr, "Elapsed (wall clock) time (h:mm:ss or m:ss)")),
        "user_s": float(_time_field(proc.stderr, "User time (seconds)")),
        "peak_rss_mb": int(_time_field(proc.stderr, "Maximum resident set size (kbytes)")) / 1024,
        "perplexity": report["perplexity"], "utilization": report["utilization"],
        "embed_effective_dim": report["embed_effective_dim"],
        "stdout_tail": proc.stdout.strip().splitlines()[-3:],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--codes", type=int, default=16_384)
    p.add_argument("--chunk-rows", type=int, default=None, help="passed to vqstudy diagnose")
    p.add_argument("--scratch", type=Path, default=Path("/tmp/diagnose-scale"), help="folder for the inputs")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "diagnose_scale.json",
                   help="JSON list the measurement is appended to")
    p.add_argument("--note", default="", help="free text stored with the measurement (e.g. machine load)")
    p.add_argument("--keep", action="store_true", help="keep the scratch files")
    args = p.parse_args(argv)
    for name in ("rows", "dim", "codes"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be a positive integer")
    folder = args.scratch / f"{args.rows}x{args.dim}-K{args.codes}"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        write_inputs(folder, args.rows, args.dim, args.codes)
        write_s = time.perf_counter() - started
        load_before = os.getloadavg()
        result = measure(folder, args.chunk_rows)
        revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                  cwd=ROOT).stdout.strip()
        record = {"rows": args.rows, "dim": args.dim, "codes": args.codes, "chunk_rows": args.chunk_rows,
                  "revision": revision,
                  "cores": os.cpu_count(), "load_average_before": load_before,
                  "load_average_after": os.getloadavg(), "write_inputs_s": write_s,
                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "note": args.note, **result}
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    history = json.loads(args.out.read_text()) if args.out.exists() else []
    history.append(record)
    args.out.write_text(json.dumps(history, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
