"""Every figure stored in the chapters is legible at the book's column width (~700 CSS px).

A figure drawn ``w`` inches wide and shown at the column width draws an ``f``-point font
``f * dpi / 72 * min(1, 700 / pixel width)`` CSS pixels high; the book needs at least 12 px (9 pt at
96 px per inch). The dpi and smallest font come from the record ``vqstudy.style.show`` writes into each
figure's output metadata, the pixel width from the stored PNG itself, so the check runs on the committed
notebooks without executing them.
"""
from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vqstudy import style  # noqa: E402

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def _figures(path: Path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data", {}).get("image/png")
            if data:
                yield i, base64.b64decode(data), out.get("metadata", {})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_figures_are_legible_at_column_width(path: Path):
    problems = [f"cell {i}: {p}" for i, png, meta in _figures(path) for p in style.legibility_problems(png, meta)]
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def _rendered(fig) -> tuple[bytes, dict]:
    """What the notebook stores: a tight-bbox PNG at the figure's dpi, and the record style.show writes."""
    meta = {style.METADATA_KEY: style.figure_metadata(fig)}
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=fig.dpi)
    plt.close(fig)
    return buf.getvalue(), meta


def test_book_style_passes_and_a_wide_default_figure_fails():
    style.apply()
    fig, axes = style.figure(2, 3)
    for ax in axes.flat:
        ax.plot([1, 2, 3], label="a condition")
        ax.set(title="A metric", xlabel="step", ylabel="value")
    png, meta = _rendered(fig)
    assert style.legibility_problems(png, meta) == []

    fig, axes = plt.subplots(1, 5, figsize=(17, 4), dpi=90)    # five panels across a 17-inch figure
    for ax in axes:
        ax.plot([1, 2, 3])
        ax.tick_params(labelsize=10)
    png, meta = _rendered(fig)
    problems = style.legibility_problems(png, meta)
    assert any("renders" in p for p in problems) and any("wider than" in p for p in problems)
    assert "no 'vqstudy_figure' record" in style.legibility_problems(png, {})[0]


def test_legible_px_arithmetic():
    # a 7-inch figure at 150 dpi (1050 px) is shown at 700 px: 10 pt -> 10 * 150/72 * 2/3 = 13.9 px
    assert style.legible_px(10, 150, 1050) == pytest.approx(13.89, abs=0.01)
    # narrower than the column: shown at natural size
    assert style.legible_px(9, 96, 600) == pytest.approx(12.0)
    with pytest.raises(ValueError, match="dpi"):
        style.legible_px(10, 0, 100)


def test_every_condition_of_the_book_has_its_fixed_colour():
    assert style.colour("deferred: k-means on trained encoder") == style.HEALTHY
    assert style.colour("healthy (deferred)") == style.HEALTHY
    assert style.colour("k-means on untrained encoder, joint") == style.SHRUNK
    assert style.colour("shrunk (joint, k-means on untrained encoder)") == style.SHRUNK
    assert style.colour("k-means joint (baseline)") == style.SHRUNK
    assert style.colour("normal(1e-3), joint") == style.SMALL_RANDOM
    assert style.colour("restart, normal init") != style.colour("restart, k-means init") == style.RESTART
    assert style.colour("an unknown label") is None
    pal = style.palette(["an unknown label", "another one", "deferred"])
    assert len(set(pal.values())) == 3 and pal["deferred"] == style.HEALTHY


def test_the_remedies_of_chapter_8_have_distinct_colours_and_old_labels_keep_theirs():
    labels = ["plain VQ (baseline)", "EMA codebook", "dead-code restart", "deferred (k-means on trained encoder)",
              "affine reparam.", "SimVQ (linear reparam.)", "cosine + low-dim lookup", "rotation trick",
              "FSQ (no codebook)", "deferred + EMA", "EMA + restart"]
    pal = style.palette(labels)
    assert len(set(pal.values())) == len(labels) and all(style.colour(label) for label in labels)
    assert (pal["FSQ (no codebook)"], pal["SimVQ (linear reparam.)"], pal["deferred + EMA"]) == \
        (style.FSQ, style.SIMVQ, style.DEFERRED_EMA)
    assert style.colour("real data (linear)") == style.REFERENCE     # "linear" alone stays a reference
    assert style.colour("deferred + restart") == style.EMA_RESTART


def test_tradeoff_plot_draws_one_numbered_point_per_condition_with_both_intervals():
    import numpy as np
    import pandas as pd

    from vqstudy import plots
    from vqstudy.tables import median_table

    df = pd.DataFrame({"condition": ["EMA"] * 10 + ["FSQ"] * 10, "ppl": np.r_[np.arange(10.0), np.arange(10.0) + 20],
                       "mse": np.r_[np.ones(10), np.linspace(1, 2, 10)]})
    table = median_table(df, ["ppl", "mse"])
    style.apply()
    fig, ax = style.figure()
    plots.tradeoff(ax, table, "ppl", "mse", order=["FSQ", "EMA"])
    assert [t.get_text() for t in ax.texts] == ["1", "2"]
    first = ax.containers[0]                       # FSQ: median 24.5, interval [21, 28] in x
    (x0, x1), _ = first.lines[2][0].get_segments()[0].T
    assert (x0, x1) == (21.0, 28.0) and first.lines[0].get_color() == style.FSQ
    plt.close(fig)
    with pytest.raises(ValueError, match="not in the table"):
        plots.tradeoff(ax, table, "ppl", "mse", order=["rotation trick"])
    with pytest.raises(ValueError, match="metric 'nope'"):
        plots.tradeoff(ax, table, "nope", "mse")


def test_image_strips_draw_one_labelled_row_per_axes_and_refuse_colour_images():
    from vqstudy import plots

    images = np.random.default_rng(0).random((3, 1, 28, 28))
    fig, axes = plt.subplots(2, 1)
    plots.image_strips(axes, {"originals": images, "decoded": images[:, 0]})
    assert [ax.get_ylabel() for ax in axes] == ["originals", "decoded"]
    assert axes[0].images[0].get_array().shape == (28, 3 * 28 + 2 * 2)
    with pytest.raises(ValueError, match="grey-level"):
        plots.image_strips(axes[:1], {"colour": np.zeros((2, 3, 28, 28))})
    with pytest.raises(ValueError, match="2 rows"):
        plots.image_strips(axes[:1], {"a": images, "b": images})
    plt.close(fig)
