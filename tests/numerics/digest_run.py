"""Train two short runs and print a digest of everything they computed (one JSON line).

Run in a fresh process by tests/test_numerics.py under emulated CPUs; the
digest must not depend on which CPU (kernels) computed it.
"""
import hashlib
import json
import sys

import vqstudy  # pins numerics first when VQSTUDY_REPRODUCIBLE=1
from vqstudy import RunConfig, diagnose, train
from vqstudy import numerics

CONFIGS = {
    # the chapters' MLP on the Gaussian mixture, k-means init on the untrained encoder
    "mlp": RunConfig().replace(train={"steps": 300, "eval_every": 150}),
    # a small convolutional VQ-VAE on sklearn's 8x8 digits (the real-data chapters' model family)
    "conv": RunConfig().replace(data={"name": "digits"},
                                model={"kind": "conv", "width": 16, "latent_dim": 8, "downsample": 1},
                                quantizer={"codebook_size": 32},
                                train={"steps": 60, "eval_every": 30, "batch_size": 64}),
}


def digest(result) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(result.history, sort_keys=True).encode())
    h.update(json.dumps(result.evals, sort_keys=True, default=repr).encode())
    return h.hexdigest()[:16]


if __name__ == "__main__":
    names = sys.argv[1:] or list(CONFIGS)
    out = {name: digest(train(CONFIGS[name], progress=False)) for name in names}
    out["_status"] = {k: v for k, v in numerics.status().items() if k in ("cpu_capability", "reproducible_numerics")}
    print(json.dumps(out, sort_keys=True))
