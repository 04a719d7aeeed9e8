"""Collapse diagnostics for quantizers that are not vqstudy's own.

:func:`vqstudy.diagnostics.diagnose` needs only embeddings, indices and a
codebook; this module pulls those three out of vector-quantize-pytorch's
``VectorQuantize`` (in its codebook space: after ``project_in`` and, for the
cosine variant, after l2-normalization) without changing the module, and
keeps a per-step log of the scalar metrics during anyone's training loop.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .config import RunConfig
from .diagnostics import diagnose, scalar_metrics
from .executors import check_workers, run_jobs
from .quantize import initial_codebook

LIBRARY_INITS = ("normal", "uniform")  # the study's small-scale inits that can be given to the library's codebook


def _check_supported(vq: nn.Module) -> None:
    """Refuse configurations whose eval forward would change the module or whose layout we would misread."""
    book = getattr(vq, "_codebook", None)
    if book is None or not hasattr(vq, "project_in"):
        raise TypeError(f"expected a vector_quantize_pytorch.VectorQuantize, got {type(vq).__name__}")
    if not bool(book.initted):
        raise ValueError("the codebook is not initialized yet (kmeans_init=True and no training forward): "
                         "its forward would run k-means on the embeddings you pass and change the module")
    if getattr(book, "affine_param", False):
        raise ValueError("affine_param=True is not supported: its forward updates batch statistics even in eval mode")
    if vq.heads != 1:
        raise ValueError(f"heads={vq.heads} is not supported: diagnose one codebook at a time")
    if vq.accept_image_fmap or vq.accept_3d_fmap or not vq.channel_last:
        raise ValueError("pass channel-last (B, N, D) embeddings to a module built with channel_last=True")


@torch.no_grad()
def codebook_and_indices(vq: nn.Module, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(embeddings in codebook space (M, Dc), indices (M,), codebook (K, Dc)) from a ``VectorQuantize``.

    ``embeddings`` are encoder outputs, (B, N, D) or (N, D). The module runs
    in eval mode under no_grad (so no EMA update, no dead-code expiry) and
    its train/eval mode is restored afterwards.
    """
    _check_supported(vq)
    x = torch.as_tensor(embeddings)
    if x.ndim not in (2, 3):
        raise ValueError(f"embeddings must be (B, N, D) or (N, D), got shape {tuple(x.shape)}")
    x = x.reshape(1, -1, x.shape[-1]) if x.ndim == 2 else x
    was_training = vq.training
    try:
        vq.eval()
        _, indices, _ = vq(x)
        z = vq._codebook.transform_input(vq.project_in(x))
    finally:
        vq.train(was_training)
    codebook = vq.codebook.detach()
    codebook = codebook[0] if codebook.ndim == 3 else codebook
    return z.reshape(-1, z.shape[-1]), indices.reshape(-1), codebook


def diagnose_vector_quantize(vq: nn.Module, embeddings: torch.Tensor, labels: Any = None,
                             chunk_size: int = 8192) -> dict[str, Any]:
    """:func:`~vqstudy.diagnostics.diagnose` for a vector-quantize-pytorch ``VectorQuantize``."""
    z, indices, codebook = codebook_and_indices(vq, embeddings)
    return diagnose(z, indices, codebook, labels, chunk_size=chunk_size)


class CollapseTracker:
    """Scalar collapse metrics every ``every`` steps, for any quantizer's training loop.

    Diagnose a fixed evaluation set, never the training batch (usage over
    one batch overstates collapse): pass it as ``eval_embeddings`` or as the
    encoder outputs of each update. ``labels``: one per diagnosed vector
    (or per item of a grid), or None.
    """

    def __init__(self, every: int, eval_embeddings: torch.Tensor | None = None, labels: Any = None):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"invalid every={every!r}: must be a positive integer")
        self.every, self.eval_embeddings, self.labels = every, eval_embeddings, labels
        self.rows: list[dict[str, float]] = []

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def update(self, step: int, embeddings: Any, indices: Any, codebook: Any) -> dict[str, float] | None:
        """Record the metrics of (embeddings, indices, codebook) if ``step`` is due; returns the row or None."""
        if not self.due(step):
            return None
        row = {"step": step, **scalar_metrics(diagnose(embeddings, indices, codebook, self.labels))}
        self.rows.append(row)
        return row

    def update_from_vector_quantize(self, step: int, vq: nn.Module,
                                    encoder_outputs: torch.Tensor | None = None) -> dict[str, float] | None:
        """Record a ``VectorQuantize``'s metrics on ``encoder_outputs`` (default: ``eval_embeddings``)."""
        if not self.due(step):
            return None
        source = self.eval_embeddings if encoder_outputs is None else encoder_outputs
        if source is None:
            raise ValueError("no embeddings: pass encoder_outputs or give the tracker eval_embeddings")
        return self.update(step, *codebook_and_indices(vq, source))

    def frame(self) -> pd.DataFrame:
        """One row per recorded step."""
        return pd.DataFrame(self.rows)


@torch.no_grad()
def set_codebook(vq: nn.Module, codes: torch.Tensor) -> None:
    """Give a ``VectorQuantize`` an explicit starting codebook (chapter 7: C1 with a small-scale init).

    The library's constructor has no init-scale option (kaiming-uniform, or zeros for ``kmeans_init``), and
    its ``codebook`` setter writes only ``embed``: with EMA updates (the default) every code is then
    recomputed as ``embed_avg / cluster_size``, so after one step the unused codes are back at the
    constructor's init. This writes ``embed`` and ``embed_avg`` (= codes x cluster size) through the
    module's state dict, so that the init holds under EMA too.
    """
    _check_supported(vq)
    book = vq._codebook
    codes = torch.as_tensor(codes, dtype=book.embed.dtype)
    if tuple(book.embed.shape) != (1, *codes.shape):
        raise ValueError(f"codes: expected shape {tuple(book.embed.shape[1:])} (one codebook), "
                         f"got {tuple(codes.shape)}")
    state = vq.state_dict()
    state["_codebook.embed"] = codes.unsqueeze(0).to(book.embed.device)
    state["_codebook.embed_avg"] = (codes.unsqueeze(0).to(book.embed.device)
                                    * book.cluster_size.unsqueeze(-1))
    vq.load_state_dict(state)


def train_with_vector_quantize(config: RunConfig, vq_kwargs: dict[str, Any], eval_every: int,
                               warmup_steps: int = 0, keep_modules: dict[str, Any] | None = None,
                               codebook_init: tuple[str, float | None] | None = None,
                               ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Train vqstudy's autoencoder around a vector-quantize-pytorch ``VectorQuantize`` and track both collapses.

    Same data, encoder/decoder, optimizer, batches and budget as :func:`vqstudy.train.train` with ``config``;
    only the quantizer is the library's (``VectorQuantize(dim=latent_dim, codebook_size=K, **vq_kwargs)``).
    With ``warmup_steps > 0`` the quantizer is bypassed for those steps, so a ``kmeans_init=True``
    codebook is fitted on the *trained* encoder's first batch: deferred quantization with the library.
    Returns the tracker's frame (diagnostics of the whole data set every ``eval_every`` steps, plus the
    reconstruction error) and the final diagnostics. ``keep_modules``, when given, receives the trained
    ``encoder``, ``decoder`` and ``vq`` and the training ``data`` (to save the tokenizer afterwards).
    ``codebook_init=(kind, scale)`` (kind in :data:`LIBRARY_INITS`, scale None for the kind's default)
    replaces the library's codebook init by the study's (:func:`vqstudy.quantize.initial_codebook`, drawn
    from its own generator seeded with the run's seed, so the batches stay those of the run without it).
    """
    from vector_quantize_pytorch import VectorQuantize

    from .data import load_dataset
    from .models import build_autoencoder
    from .repro import adam, make_deterministic

    tc = config.train
    if not 0 <= warmup_steps < tc.steps:
        raise ValueError(f"invalid warmup_steps={warmup_steps!r}: must lie in [0, steps={tc.steps})")
    if codebook_init is not None and (codebook_init[0] not in LIBRARY_INITS or vq_kwargs.get("kmeans_init")):
        raise ValueError(f"invalid codebook_init={codebook_init!r}: the kind must be one of {LIBRARY_INITS}, "
                         "without kmeans_init=True (which would overwrite it)")
    gen = make_deterministic(tc.seed, tc.threads)
    data = load_dataset(config.data)
    x, labels = data.x.to(tc.device), data.labels
    encoder, decoder = build_autoencoder(config.model, tuple(data.x.shape[1:]))
    vq = VectorQuantize(dim=config.model.latent_dim, codebook_size=config.quantizer.codebook_size, **vq_kwargs)
    if codebook_init is not None:
        kind, scale = codebook_init
        draw = torch.Generator().manual_seed(tc.seed)
        set_codebook(vq, initial_codebook(kind, config.quantizer.codebook_size, config.model.latent_dim, draw, scale))
    modules = nn.ModuleList([encoder, decoder, vq]).to(tc.device)
    opt = adam([p for p in modules.parameters() if p.requires_grad], lr=tc.lr)
    tracker = CollapseTracker(eval_every, labels=labels)

    def record(step: int) -> None:
        if step < warmup_steps or not vq._codebook.initted:
            return  # nothing to diagnose before the codebook exists
        with torch.no_grad():
            encoder.eval(), decoder.eval()
            z = encoder(x)
            quantized, _, _ = vq.eval()(z.unsqueeze(0))
            recon = float(nn.functional.mse_loss(decoder(quantized[0]), x))
            encoder.train(), decoder.train(), vq.train()
        row = tracker.update_from_vector_quantize(step, vq, z.unsqueeze(0))
        if row is not None:
            row["recon_error"] = recon

    for step in range(tc.steps):
        if step % eval_every == 0:
            record(step)
        batch = x[torch.randint(x.shape[0], (tc.batch_size,), generator=gen).to(tc.device)]
        z = encoder(batch)
        if step < warmup_steps:
            loss = nn.functional.mse_loss(decoder(z), batch)
        else:
            quantized, _, vq_loss = vq(z.unsqueeze(0))
            loss = nn.functional.mse_loss(decoder(quantized[0]), batch) + vq_loss.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    tracker.every = 1
    record(tc.steps)
    frame = tracker.frame()
    if keep_modules is not None:
        keep_modules.update(encoder=encoder, decoder=decoder, vq=vq, data=data)
    return frame, frame.iloc[-1].to_dict()


def _library_job(config: dict[str, Any], vq_kwargs: dict[str, Any], eval_every: int, warmup_steps: int,
                 codebook_init: tuple[str, float | None] | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    return train_with_vector_quantize(RunConfig.from_dict(config), vq_kwargs, eval_every, warmup_steps,
                                      codebook_init=codebook_init)


def train_many_with_vector_quantize(
        runs: list[tuple[RunConfig, dict[str, Any], int, int, tuple[str, float | None] | None]],
        workers: int | None = None) -> list[tuple[pd.DataFrame, dict[str, Any]]]:
    """:func:`train_with_vector_quantize` for each ``(config, vq_kwargs, eval_every, warmup_steps,
    codebook_init)`` of ``runs``, in parallel processes (the library trains one seed at a time; chapter 7
    needs ten per arm). Results in the order of ``runs``; the first failure is raised."""
    jobs = [(i, (config.to_dict(), dict(kwargs), every, warmup, init))
            for i, (config, kwargs, every, warmup, init) in enumerate(runs)]
    out: dict[int, tuple[pd.DataFrame, dict[str, Any]]] = {}
    for key, future in run_jobs(_library_job, jobs, workers=check_workers(workers, None)):
        out[key] = future.result()
    return [out[i] for i in range(len(runs))]


@torch.no_grad()
def save_tokenizer(vq: nn.Module, encoder: nn.Module, x: torch.Tensor, folder: str | Path,
                   labels: Any = None) -> dict[str, Path]:
    """Save what ``vqstudy diagnose`` reads: ``tokenizer.pt`` (the quantizer's state dict), ``embeddings.npy``
    (the encoder's outputs on ``x``, float32) and, with ``labels``, ``labels.npy``. Returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    was_training = encoder.training
    try:
        encoder.eval()
        z = encoder(x)
    finally:
        encoder.train(was_training)
    paths = {"codebook": folder / "tokenizer.pt", "embeddings": folder / "embeddings.npy"}
    torch.save(vq.state_dict(), paths["codebook"])
    np.save(paths["embeddings"], z.reshape(-1, z.shape[-1]).float().cpu().numpy())
    if labels is not None:
        paths["labels"] = folder / "labels.npy"
        np.save(paths["labels"], torch.as_tensor(labels).reshape(-1).long().cpu().numpy())
    return paths
