"""Training time on a GPU against the CPU, for the book's model families, and a look at the real-image regime.

Run on a machine with CUDA: ``python benchmarks/bench_cuda.py [--steps 3000] [--seeds 2] [--out FILE]``.
It times (1) the chapters' MLP on the Gaussian mixture, on the CPU and on the GPU, and (2) a convolutional
VQ-VAE on MNIST-5k (28x28 -> 7x7 tokens, code dimension 16, K = 1,024) on the GPU, joint training from
k-means on the untrained encoder against deferred quantization with the same total steps, and prints
perplexity, codes used and reconstruction MSE of each. Numbers from a GPU are not bit-identical to the
CPU's; this is a timing and planning tool, not a source of stored results.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from vqstudy import RunConfig, train


def timed(cfg: RunConfig) -> dict:
    started = time.perf_counter()
    run = train(cfg, progress=False)
    final = run.final
    return {"seconds": round(time.perf_counter() - started, 2), "status": run.status,
            "perplexity": round(final.get("perplexity", float("nan")), 1),
            "codes_used": round(final.get("utilization", float("nan")) * cfg.quantizer.codebook_size),
            "recon_mse": final.get("recon_error")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="steps of the MNIST runs (default 3000)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds of the MNIST runs (default 2)")
    parser.add_argument("--out", help="write the measurements as JSON here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("no CUDA device: this benchmark needs one")
    out: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    mlp = RunConfig().replace(train={"steps": 1500, "eval_every": 1500})
    out["mlp_cpu"] = timed(mlp)
    out["mlp_cuda"] = timed(mlp.replace(train={"device": "cuda"}))
    base = RunConfig().replace(
        data={"name": "mnist5k", "test_fraction": 0.2},
        model={"kind": "conv", "width": 64, "depth": 1, "latent_dim": 16, "downsample": 2},
        quantizer={"codebook_size": 1024},
        train={"steps": args.steps, "eval_every": args.steps, "batch_size": 128, "device": "cuda"})
    for seed in range(args.seeds):
        out[f"mnist_joint_seed{seed}"] = timed(base.replace(train={"seed": seed}))
        out[f"mnist_deferred_seed{seed}"] = timed(base.replace(
            train={"seed": seed, "schedule": "deferred", "warmup_steps": args.steps // 2}))
        print(json.dumps({k: v for k, v in out.items() if k.endswith(f"seed{seed}")}), flush=True)
    print(json.dumps(out, indent=1))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
