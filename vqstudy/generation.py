"""Generation on top of a VQ tokenizer: an autoregressive prior, and how to judge its samples.

The paper's C7 says a generator trained on a shrunk tokenizer's tokens gives
less diverse, less faithful samples. To test it offline we need three small,
reproducible pieces, all here:

* :class:`TokenPrior`, a tiny causal transformer over a tokenizer's token
  grid (raster order, a BOS token in front), trained by :func:`fit_prior` and
  sampled by :meth:`TokenPrior.sample`; :func:`tokenize` and :func:`decode_tokens`
  connect it to a trained :class:`~vqstudy.train.VQAutoencoder`.
* :class:`FeatureClassifier`, a small CNN trained once on the real training
  images (:func:`train_classifier`); its penultimate-layer features replace
  Inception features (no pretrained weights load offline) in
  :func:`frechet_distance`, and its predicted classes give the class coverage
  of a sample set (:func:`class_coverage`).
* :func:`mean_pairwise_distance`, the diversity measure: mean L2 distance
  between two different images, pixels in [0, 1].

Everything takes a ``seed`` and a ``device``; random draws come from CPU
generators, so a seed gives the same samples on every run (with
``torch.use_deterministic_algorithms(True)`` and a fixed thread count).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .executors import ExecutorSpec, default_scheduler, run_jobs
from .repro import adam
from .train import EVAL_BATCH, VQAutoencoder


# --- tokens <-> images ----------------------------------------------------------------------------

@torch.no_grad()
def tokenize(model: VQAutoencoder, x: torch.Tensor) -> torch.Tensor:
    """Token grid (N, h, w) of images x (N, C, H, W) under a trained tokenizer (eval mode)."""
    z = model.encode(x)
    idx = model.quantizer.assign(z.reshape(-1, z.shape[-1]))
    return idx.reshape(z.shape[:-1])


@torch.no_grad()
def decode_tokens(model: VQAutoencoder, tokens: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) decoded from token grids (N, h, w) (eval mode, batched)."""
    was_training = model.training
    model.eval()
    codebook = model.quantizer.codes().detach()
    out = torch.cat([model.decoder(F.embedding(tokens[i:i + EVAL_BATCH].to(codebook.device), codebook))
                     for i in range(0, tokens.shape[0], EVAL_BATCH)])
    model.train(was_training)
    return out


# --- the autoregressive prior --------------------------------------------------------------------

class _Block(nn.Module):
    """Pre-norm transformer block with explicit causal attention (deterministic on CPU and CUDA)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, length, d = h.shape
        q, k, v = self.qkv(self.norm1(h)).split(d, dim=-1)
        shape = (b, length, self.n_heads, d // self.n_heads)
        q, k, v = (t.reshape(shape).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.n_heads)
        future = torch.ones(length, length, dtype=torch.bool, device=h.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
        att = scores.softmax(-1) @ v
        h = h + self.proj(att.transpose(1, 2).reshape(b, length, d))
        return h + self.mlp(self.norm2(h))


class TokenPrior(nn.Module):
    """A small causal transformer over flattened token grids.

    ``forward(tokens)`` takes (B, L) tokens and returns (B, L, vocab) logits
    where position i predicts token i from tokens 0..i-1 only (a BOS token is
    prepended and the last token dropped), so the logits at i never depend on
    tokens i, i+1, ...
    """

    def __init__(self, vocab_size: int, length: int, d_model: int = 64, n_layers: int = 2, n_heads: int = 4):
        super().__init__()
        if vocab_size < 1 or length < 1:
            raise ValueError(f"need vocab_size >= 1 and length >= 1, got {vocab_size}, {length}")
        self.vocab_size, self.length = vocab_size, length
        self.token = nn.Embedding(vocab_size + 1, d_model)  # the last id is BOS
        self.position = nn.Parameter(torch.zeros(length, d_model))
        nn.init.normal_(self.position, std=0.02)
        self.blocks = nn.ModuleList([_Block(d_model, n_heads) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2 or tokens.shape[1] > self.length:
            raise ValueError(f"expected tokens (B, L<={self.length}), got {tuple(tokens.shape)}")
        bos = torch.full((tokens.shape[0], 1), self.vocab_size, dtype=torch.long, device=tokens.device)
        inputs = torch.cat([bos, tokens[:, :-1]], dim=1)
        h = self.token(inputs) + self.position[:inputs.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, temperature: float = 1.0, batch_size: int = 1024) -> torch.Tensor:
        """``n`` token sequences (n, L), drawn position by position; the same seed gives the same tokens."""
        if temperature <= 0:
            raise ValueError(f"invalid temperature={temperature!r}: must be > 0")
        was_training = self.training
        self.eval()
        device = self.head.weight.device
        gen = torch.Generator(device="cpu").manual_seed(seed)
        out = []
        for start in range(0, n, batch_size):
            b = min(batch_size, n - start)
            seq = torch.zeros(b, self.length, dtype=torch.long, device=device)
            for i in range(self.length):
                logits = self(seq[:, :i + 1])[:, i].double().cpu() / temperature
                seq[:, i] = torch.multinomial(logits.softmax(-1), 1, generator=gen).squeeze(1).to(device)
            out.append(seq)
        self.train(was_training)
        return torch.cat(out)


def fit_prior(tokens: torch.Tensor, vocab_size: int, steps: int = 600, batch_size: int = 128,
              lr: float = 3e-3, seed: int = 0, device: str = "cpu", d_model: int = 64, n_layers: int = 2,
              n_heads: int = 4) -> tuple[TokenPrior, list[float]]:
    """Train a :class:`TokenPrior` on token grids (N, ...) by next-token cross-entropy; returns it and the losses."""
    flat = tokens.reshape(tokens.shape[0], -1).long()
    if flat.numel() == 0 or int(flat.max()) >= vocab_size or int(flat.min()) < 0:
        raise ValueError(f"tokens must be non-empty integers in [0, {vocab_size})")
    torch.manual_seed(seed)
    prior = TokenPrior(vocab_size, flat.shape[1], d_model, n_layers, n_heads).to(device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    opt = adam(prior.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    data = flat.to(device)
    losses = []
    prior.train()
    for _ in range(steps):
        batch = data[torch.randint(data.shape[0], (batch_size,), generator=gen).to(device)]
        loss = F.cross_entropy(prior(batch).reshape(-1, vocab_size), batch.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    prior.eval()
    return prior, losses


@torch.no_grad()
def prior_nll(prior: TokenPrior, tokens: torch.Tensor) -> float:
    """Mean next-token negative log-likelihood (nats per token) of token grids under the prior."""
    flat = tokens.reshape(tokens.shape[0], -1).long().to(prior.head.weight.device)
    total = 0.0
    for i in range(0, flat.shape[0], EVAL_BATCH):
        b = flat[i:i + EVAL_BATCH]
        total += F.cross_entropy(prior(b).reshape(-1, prior.vocab_size), b.reshape(-1), reduction="sum").item()
    return total / flat.numel()


# --- the judge: a small classifier and its features ----------------------------------------------

class FeatureClassifier(nn.Module):
    """A small CNN; ``features`` is its penultimate layer (``width`` numbers per image)."""

    def __init__(self, channels: int, n_classes: int, width: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(64, width), nn.ReLU(),
        )
        self.head = nn.Linear(width, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_classifier(x: torch.Tensor, labels: torch.Tensor, steps: int = 800, batch_size: int = 128,
                     lr: float = 2e-3, seed: int = 0, device: str = "cpu", width: int = 64) -> FeatureClassifier:
    """Train :class:`FeatureClassifier` on real images x (N, C, H, W) with their labels; deterministic per seed."""
    if x.ndim != 4 or len(labels) != len(x):
        raise ValueError(f"expected images (N, C, H, W) and N labels, got {tuple(x.shape)} and {len(labels)}")
    torch.manual_seed(seed)
    clf = FeatureClassifier(x.shape[1], int(labels.max()) + 1, width).to(device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    opt = adam(clf.parameters(), lr=lr)
    xd, yd = x.to(device), labels.long().to(device)
    clf.train()
    for _ in range(steps):
        pick = torch.randint(xd.shape[0], (batch_size,), generator=gen).to(device)
        loss = F.cross_entropy(clf(xd[pick]), yd[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    clf.eval()
    return clf


@torch.no_grad()
def _batched(fn, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.cat([fn(x[i:i + EVAL_BATCH].to(device)) for i in range(0, x.shape[0], EVAL_BATCH)])


@torch.no_grad()
def classifier_features(clf: FeatureClassifier, x: torch.Tensor) -> torch.Tensor:
    """Penultimate-layer features (N, width), on the CPU as float64."""
    return _batched(clf.features, x, clf.head.weight.device).double().cpu()


@torch.no_grad()
def predict(clf: FeatureClassifier, x: torch.Tensor) -> torch.Tensor:
    """Predicted class per image (N,), on the CPU."""
    return _batched(clf, x, clf.head.weight.device).argmax(1).cpu()


def accuracy(clf: FeatureClassifier, x: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predict(clf, x) == labels.cpu()).double().mean())


# --- metrics -------------------------------------------------------------------------------------

def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance_from_stats(mu1: Any, cov1: Any, mu2: Any, cov2: Any) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), by symmetric eigendecompositions.

    Equal to the usual tr(S1 + S2 - 2 (S1 S2)^1/2) (the two square roots have
    the same trace) but real and stable for singular covariances.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: means {mu1.shape}, {mu2.shape}; covariances {cov1.shape}, {cov2.shape}")
    root1 = _sqrt_psd(cov1)
    middle = np.linalg.eigvalsh((root1 @ cov2 @ root1 + (root1 @ cov2 @ root1).T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(middle, 0, None)).sum())
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt)
    return max(value, 0.0)


def frechet_distance(features1: Any, features2: Any) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N1, d) and (N2, d)."""
    f1 = np.asarray(features1.cpu() if isinstance(features1, torch.Tensor) else features1, np.float64)
    f2 = np.asarray(features2.cpu() if isinstance(features2, torch.Tensor) else features2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1] or min(len(f1), len(f2)) < 2:
        raise ValueError(f"expected two (N >= 2, d) feature sets, got {f1.shape} and {f2.shape}")
    return frechet_distance_from_stats(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))


def mean_pairwise_distance(images: torch.Tensor, clip: bool = True) -> float:
    """Mean L2 distance between two different images (pixels clipped to [0, 1]), over all pairs.

    For 8x8 digits the largest possible value is 8 (all 64 pixels differ by 1).
    """
    x = images.detach().reshape(images.shape[0], -1).double().cpu()
    if x.shape[0] < 2:
        raise ValueError("need at least two images")
    if clip:
        x = x.clamp(0, 1)
    n = x.shape[0]
    total = 0.0
    for i in range(0, n, 1024):
        total += torch.cdist(x[i:i + 1024], x).sum().item()
    return total / (n * (n - 1))


def class_coverage(predicted: torch.Tensor, n_classes: int, min_share: float = 0.01) -> dict[str, Any]:
    """Histogram of predicted classes, its entropy (nats; ideal log n_classes) and the classes covered
    (those predicted for at least ``min_share`` of the samples)."""
    counts = torch.bincount(predicted.reshape(-1).long().cpu(), minlength=n_classes).double()
    share = counts / counts.sum()
    nz = share[share > 0]
    return {"histogram": counts.long().tolist(),
            "class_entropy": float(-(nz * nz.log()).sum()),
            "classes_covered": int((share >= min_share).sum())}


# --- one tokenizer + prior + samples, runnable in a worker process --------------------------------

def tokenizer_prior_samples(config_dict: dict[str, Any], n_samples: int, prior_steps: int = 600,
                            prior_batch: int = 128, prior_lr: float = 3e-3, d_model: int = 64, n_layers: int = 2,
                            n_heads: int = 4, temperature: float = 1.0) -> dict[str, Any]:
    """Train the tokenizer a :class:`~vqstudy.config.RunConfig` dict describes, fit a prior to its token grids
    on the training split, sample ``n_samples`` grids and decode them.

    The tokenizer, the prior and the sampling all use ``config.train.seed``. Returns plain values and CPU
    tensors only (so it can run in a process pool): the tokenizer's held-out diagnostics, its held-out
    reconstructions, the prior's losses and held-out NLL, the sampled tokens and the decoded samples.
    """
    from .config import RunConfig
    from .train import train

    config = RunConfig.from_dict(config_dict)
    run = train(config, progress=False)  # seeds and fixes threads + deterministic kernels
    if run.status != "ok":
        raise RuntimeError(f"tokenizer training {run.status}: {run.reason}")
    model, device = run.model, config.train.device
    from .data import held_out_split

    if config.data.test_fraction > 0:
        _, test = held_out_split(config.data)
    else:
        test = run.dataset
    train_tokens = tokenize(model, run.dataset.x.to(device)).cpu()
    test_tokens = tokenize(model, test.x.to(device)).cpu()
    k = config.quantizer.codebook_size
    prior, losses = fit_prior(train_tokens, k, prior_steps, prior_batch, prior_lr, config.train.seed, device,
                              d_model, n_layers, n_heads)
    tokens = prior.sample(n_samples, seed=config.train.seed, temperature=temperature)
    samples = decode_tokens(model, tokens.reshape(n_samples, *train_tokens.shape[1:])).cpu()
    return {
        "final": {key: v for key, v in run.final.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
        "reconstructions": model.reconstruct(test.x.to(device)).cpu(),
        "prior_loss_first": losses[0], "prior_loss_last": losses[-1],
        "prior_nll_test": prior_nll(prior, test_tokens),
        "train_codes_used": int(train_tokens.unique().numel()),
        "sample_codes_used": int(tokens.unique().numel()),
        "sample_tokens": tokens.cpu(),
        "samples": samples,
    }


def run_pipelines(config_dicts: list[dict[str, Any]], workers: int = 2, executor: ExecutorSpec = None,
                  **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`tokenizer_prior_samples` for each config; results in config order.

    Runs go where the sweeps' do (:func:`vqstudy.executors.run_jobs`): ``executor``
    None means the Dask cluster of ``$VQSTUDY_SCHEDULER`` if set, else a spawn
    process pool of ``workers`` (1: in this process). Each job is
    deterministic given its config, wherever it runs. The first failure in
    config order is raised once every job has ended.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"invalid workers={workers!r}: must be an integer >= 1")
    if executor is None and workers == 1 and default_scheduler() is None:
        executor = "inline"
    futures = dict(run_jobs(tokenizer_prior_samples, enumerate((c,) for c in config_dicts), executor,
                            min(workers, max(len(config_dicts), 1)), kwargs))
    return [futures[i].result() for i in range(len(config_dicts))]
