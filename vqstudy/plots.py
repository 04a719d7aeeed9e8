"""The study's figures, shared by every chapter (seaborn on matplotlib axes)."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from sklearn.decomposition import PCA

from .diagnostics import usage_counts


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def codes_vs_embeddings(ax: plt.Axes, embeddings, codes, labels=None, indices=None, title: str = "",
                        max_points: int = 3000) -> None:
    """Embeddings (coloured by cluster) and codes (black x: used, grey o: dead) in the embeddings' top-2 PCA plane.

    The plane is fitted on the embeddings only, so a codebook bunched in a
    corner of the data shows up as such (the paper's Figure 3).
    """
    z = _numpy(embeddings).reshape(-1, _numpy(embeddings).shape[-1])
    c = _numpy(codes)
    pca = PCA(2, random_state=0).fit(z)
    step = max(1, len(z) // max_points)
    zp, cp = pca.transform(z[::step]), pca.transform(c)
    hue = None if labels is None else _numpy(labels).reshape(-1)[::step]
    sns.scatterplot(x=zp[:, 0], y=zp[:, 1], hue=hue, palette="tab10", s=6, alpha=0.35, linewidth=0, ax=ax,
                    legend=False)
    used = np.ones(len(c), bool)
    if indices is not None:
        used = _numpy(usage_counts(indices, len(c))) > 0
    ax.scatter(cp[~used, 0], cp[~used, 1], marker="o", s=18, facecolors="none", edgecolors="grey",
               label=f"dead codes ({(~used).sum()})")
    ax.scatter(cp[used, 0], cp[used, 1], marker="x", s=28, c="black", label=f"used codes ({used.sum()})")
    ax.set(title=title, xlabel="PC 1 of embeddings", ylabel="PC 2 of embeddings")
    ax.legend(loc="best", fontsize="small")


def usage_curve(ax: plt.Axes, indices, codebook_size: int, label: str) -> None:
    """Share of assignments per code, codes sorted by usage: a flat curve is healthy, a cliff is collapse."""
    counts = _numpy(usage_counts(indices, codebook_size))
    share = np.sort(counts)[::-1] / max(counts.sum(), 1)
    ax.plot(np.arange(1, codebook_size + 1), share, drawstyle="steps-mid", label=label)
    ax.set(xlabel="code rank (by usage)", ylabel="share of assignments", yscale="symlog",
           xlim=(1, codebook_size))
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}" if v >= 0.01 else f"{v:.1%}"))


def metric_by_condition(ax: plt.Axes, df: pd.DataFrame, metric: str, x: str = "condition",
                        order: Sequence[str] | None = None, ylabel: str | None = None) -> None:
    """Mean over seeds with a 95% bootstrap interval (fixed bootstrap seed), plus each seed as a dot."""
    sns.barplot(data=df, x=x, y=metric, order=order, errorbar=("ci", 95), seed=0, ax=ax, color="C0",
                alpha=0.6)
    sns.stripplot(data=df, x=x, y=metric, order=order, ax=ax, color="black", size=4, jitter=False)
    ax.set(xlabel="", ylabel=ylabel or metric.replace("_", " "))
    ax.tick_params(axis="x", rotation=20)
    for lab in ax.get_xticklabels():
        lab.set_horizontalalignment("right")


def metric_lines(ax: plt.Axes, df: pd.DataFrame, x: str, y: str, hue: str | None = None,
                 logx: bool = False, ylabel: str | None = None, xlabel: str | None = None) -> None:
    """A metric against a swept axis, mean and 95% interval over seeds per hue."""
    sns.lineplot(data=df, x=x, y=y, hue=hue, marker="o", errorbar=("ci", 95), seed=0, ax=ax)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set(xlabel=xlabel or x.replace("_", " "), ylabel=ylabel or y.replace("_", " "))


def heatmap(ax: plt.Axes, table: pd.DataFrame, title: str, fmt: str = ".2f", cmap: str = "viridis",
            vmin: float | None = None, vmax: float | None = None, cbar_label: str = "") -> None:
    """An annotated map of one metric over two swept axes (a triggering-condition map)."""
    sns.heatmap(table, annot=True, fmt=fmt, cmap=cmap, vmin=vmin, vmax=vmax, ax=ax,
                cbar_kws={"label": cbar_label})
    ax.set_title(title)
