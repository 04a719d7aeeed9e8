"""Collapse diagnostics for quantizers that are not vqstudy's own.

:func:`vqstudy.diagnostics.diagnose` needs only embeddings, indices and a
codebook; this module pulls those three out of vector-quantize-pytorch's
``VectorQuantize`` (in its codebook space: after ``project_in`` and, for the
cosine variant, after l2-normalization) without changing the module, and
keeps a per-step log of the scalar metrics during anyone's training loop.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch import nn

from .diagnostics import diagnose, scalar_metrics


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
