"""The study's figures, shared by every chapter (seaborn on matplotlib axes; look and colours from
:mod:`vqstudy.style`)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from sklearn.decomposition import PCA

from . import style
from .diagnostics import usage_counts


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def codes_vs_embeddings(ax: plt.Axes, embeddings, codes, labels=None, indices=None, title: str = "",
                        max_points: int = 3000, legend: bool = True) -> tuple[int, int]:
    """Embeddings (coloured by cluster) and codes (black x: used, grey o: dead) in the embeddings' top-2 PCA plane.

    The plane is fitted on the embeddings only, so a codebook bunched in a
    corner of the data shows up as such (the paper's Figure 3). Returns
    (used, dead) code counts, for a title or a shared legend.
    """
    z = _numpy(embeddings).reshape(-1, _numpy(embeddings).shape[-1])
    c = _numpy(codes)
    pca = PCA(2, random_state=0).fit(z)
    step = max(1, len(z) // max_points)
    zp, cp = pca.transform(z[::step]), pca.transform(c)
    hue = None if labels is None else _numpy(labels).reshape(-1)[::step]
    sns.scatterplot(x=zp[:, 0], y=zp[:, 1], hue=hue, palette="tab10", s=5, alpha=0.35, linewidth=0, ax=ax,
                    legend=False)
    used = np.ones(len(c), bool)
    if indices is not None:
        used = _numpy(usage_counts(indices, len(c))) > 0
    ax.scatter(cp[~used, 0], cp[~used, 1], marker="o", s=14, facecolors="none", edgecolors="grey",
               label=f"dead codes ({(~used).sum()})")
    ax.scatter(cp[used, 0], cp[used, 1], marker="x", s=22, c="black", label=f"used codes ({used.sum()})")
    ax.set(title=title, xlabel="PC 1 of embeddings", ylabel="PC 2 of embeddings")
    if legend:
        ax.legend(loc="best")
    return int(used.sum()), int((~used).sum())


def code_handles() -> tuple[list, list[str]]:
    """Legend entries for the code markers of :func:`codes_vs_embeddings` (for a shared legend)."""
    from matplotlib.lines import Line2D

    return ([Line2D([], [], marker="x", ls="", color="black", markersize=6),
             Line2D([], [], marker="o", ls="", markerfacecolor="none", markeredgecolor="grey", markersize=6)],
            ["used code", "dead code (never nearest to an embedding)"])


def usage_curve(ax: plt.Axes, indices, codebook_size: int, label: str) -> None:
    """Share of assignments per code, codes sorted by usage: a flat curve is healthy, a cliff is collapse.

    The y axis is linear below 0.1% and logarithmic above, so dead codes (share 0) stay on the plot.
    """
    counts = _numpy(usage_counts(indices, codebook_size))
    share = np.sort(counts)[::-1] / max(counts.sum(), 1)
    ax.plot(np.arange(1, codebook_size + 1), share, drawstyle="steps-mid", label=label,
            color=style.colour(label))
    ax.set_yscale("symlog", linthresh=1e-3, linscale=0.5)
    ax.set(xlabel="code rank (by usage)", ylabel="share of assignments", xlim=(1, codebook_size), ylim=(0, 1))
    ax.yaxis.set_major_locator(plt.FixedLocator([0, 1e-3, 1e-2, 1e-1, 1]))
    ax.yaxis.set_minor_locator(plt.NullLocator())
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: "0" if v == 0 else f"{v:.1%}" if v < 0.01
                                                   else f"{v:.0%}"))


def metric_by_condition(ax: plt.Axes, df: pd.DataFrame, metric: str, x: str = "condition",
                        order: Sequence[str] | None = None, ylabel: str | None = None,
                        title: str | None = None) -> None:
    """Mean over seeds with a 95% bootstrap interval (fixed bootstrap seed), plus each seed as a dot.

    Bars take the condition's fixed colour and are numbered 1..n in ``order``; the figure's shared
    legend (:func:`vqstudy.style.condition_handles` with ``numbered=True``) names them.
    """
    order = list(order) if order is not None else list(dict.fromkeys(df[x]))
    sns.barplot(data=df, x=x, y=metric, order=order, hue=x, hue_order=order, palette=style.palette(order),
                errorbar=("ci", 95), seed=0, ax=ax, dodge=False, legend=False, err_kws={"linewidth": 1.2})
    sns.stripplot(data=df, x=x, y=metric, order=order, ax=ax, color="black", size=3, jitter=False)
    ax.set_xticks(range(len(order)), [str(i) for i in range(1, len(order) + 1)])
    ax.set(xlabel="", ylabel=ylabel if ylabel is not None else metric.replace("_", " "))
    if title:
        ax.set_title(title)


def metric_lines(ax: plt.Axes, df: pd.DataFrame, x: str, y: str, hue: str | None = None,
                 logx: bool = False, ylabel: str | None = None, xlabel: str | None = None,
                 hue_order: Sequence | None = None) -> None:
    """A metric against a swept axis, mean and 95% interval over seeds per hue.

    Condition names as hue take their fixed colours; a numeric hue (depth, width) a sequential palette.
    """
    palette = None
    if hue is not None:
        levels = list(hue_order) if hue_order is not None else list(dict.fromkeys(df[hue]))
        if all(isinstance(v, str) for v in levels):
            palette = style.palette(levels)
        else:
            palette = "viridis"
        hue_order = levels
    sns.lineplot(data=df, x=x, y=y, hue=hue, hue_order=hue_order, palette=palette, marker="o",
                 markersize=5, errorbar=("ci", 95), seed=0, ax=ax)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set(xlabel=xlabel if xlabel is not None else x.replace("_", " "),
           ylabel=ylabel if ylabel is not None else y.replace("_", " "))


def heatmap(ax: plt.Axes, table: pd.DataFrame, title: str = "", fmt: str = ".2f", cmap: str = "viridis",
            vmin: float | None = None, vmax: float | None = None, cbar_label: str = "",
            cbar: bool = True) -> None:
    """An annotated map of one metric over two swept axes (a triggering-condition map)."""
    sns.heatmap(table, annot=True, fmt=fmt, cmap=cmap, vmin=vmin, vmax=vmax, ax=ax, cbar=cbar,
                annot_kws={"fontsize": style.FONT_PT}, cbar_kws={"label": cbar_label} if cbar else None)
    ax.set_title(title)


def tradeoff(ax: plt.Axes, table: pd.DataFrame, x: str, y: str, order: Sequence[str] | None = None,
             xlabel: str | None = None, ylabel: str | None = None, title: str | None = None) -> None:
    """One point per condition at its median ``x`` and ``y``, with both intervals as bars (chapter 8).

    ``table`` is a :func:`vqstudy.tables.median_table` (columns (metric, 'median' | 'low' | 'high'))
    indexed by condition. Each point takes the condition's fixed colour and is numbered 1..n in
    ``order``, so a figure's shared legend (:func:`vqstudy.style.condition_handles` with
    ``numbered=True``) names it and the reader needs no colour to tell the points apart.
    """
    order = list(order) if order is not None else list(table.index)
    missing = [c for c in order if c not in table.index]
    if missing:
        raise ValueError(f"conditions {missing} are not in the table; it has {list(table.index)}")
    for metric in (x, y):
        if (metric, "median") not in table.columns:
            raise ValueError(f"metric {metric!r} is not in the table (expected a median_table column)")
    pal = style.palette(order)
    for number, condition in enumerate(order, 1):
        row = table.loc[condition]
        mx, my = row[(x, "median")], row[(y, "median")]
        ax.errorbar(mx, my, xerr=[[mx - row[(x, "low")]], [row[(x, "high")] - mx]],
                    yerr=[[my - row[(y, "low")]], [row[(y, "high")] - my]], fmt="o", ms=6,
                    color=pal[condition], mec="black", mew=0.6, ecolor=pal[condition], elinewidth=1.2,
                    capsize=2)
        ax.annotate(str(number), (mx, my), xytext=(4, 3), textcoords="offset points", fontsize=style.FONT_PT)
    ax.set(xlabel=xlabel if xlabel is not None else x.replace("_", " "),
           ylabel=ylabel if ylabel is not None else y.replace("_", " "))
    if title:
        ax.set_title(title)


def image_strips(axes: Sequence[plt.Axes], rows: Mapping[str, Any], gap: int = 2) -> None:
    """One row of grey-level images per axes (e.g. originals, then each model's reconstructions of them),
    the images side by side with a ``gap``-pixel white border, the row's label on its left (chapter 9)."""
    if len(axes) != len(rows):
        raise ValueError(f"{len(rows)} rows of images need as many axes, got {len(axes)}")
    for ax, (label, images) in zip(axes, rows.items()):
        arr = _numpy(images)
        if arr.ndim == 4:
            if arr.shape[1] != 1:
                raise ValueError(f"{label}: grey-level images (N, 1, H, W) expected, got shape {arr.shape}")
            arr = arr[:, 0]
        n, h, w = arr.shape
        strip = np.ones((h, n * (w + gap) - gap))
        for i, image in enumerate(arr):
            strip[:, i * (w + gap):i * (w + gap) + w] = 1.0 - np.clip(image, 0.0, 1.0)  # dark ink on white
        ax.imshow(strip, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(style.wrap(label, 18), rotation=0, ha="right", va="center")
        for spine in ax.spines.values():
            spine.set_visible(False)
