"""One look for every figure of the book: size, fonts, resolution and a fixed colour per condition.

The book's text column is about 700 CSS pixels wide, so a figure is drawn
:data:`WIDTH_IN` inches wide and shown at that width whatever its resolution:
a font of ``f`` points then appears ``f * 700 / (72 * width)`` CSS pixels high.
:func:`legible_px` is that arithmetic; :func:`show` records the figure's
smallest font and its dpi in the notebook output's metadata (key
:data:`METADATA_KEY`) so that a test can check every stored figure without
re-running the chapter.

Every condition of the study keeps one colour in every chapter
(:func:`colour`): the healthy, deferred codebook is always green, the codebook
shrunk by k-means on an untrained encoder always vermillion, small random
initializations blue, and so on. Variants of a fix that start from a small
normal initialization get a lighter shade of the fix's colour.
"""
from __future__ import annotations

import math
import re
import textwrap
from typing import Iterable, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
from matplotlib.colors import to_hex, to_rgb
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text

COLUMN_PX = 700            # the book's content column (CSS px) at desktop width
CSS_PX_PER_INCH = 96
MIN_FONT_PX = 12.0         # 9 pt at 96 CSS px per inch: the smallest legible text at the column width
WIDTH_IN = 7.0             # a full-column figure
DPI = 150                  # sharp on high-density screens; the rendered size is set by the column
FONT_PT = 10.0             # ticks, legends, annotations
LABEL_PT = 11.0            # axis labels and panel titles
METADATA_KEY = "vqstudy_figure"

# Okabe-Ito / seaborn "colorblind" colours, named for the condition families of the study.
HEALTHY = "#009E73"        # deferred quantization, a trained encoder: the healthy codebook
SHRUNK = "#D55E00"         # k-means on an untrained encoder, joint training: the shrunk codebook
SMALL_RANDOM = "#0072B2"   # normal(small) random initialization
UNIFORM = "#56B4E9"        # uniform(1/K) initialization
RAW_DATA = "#7F7F7F"       # k-means on the raw inputs
RESTART = "#E69F00"        # dead-code restarts
EMA = "#8E5FB5"            # EMA codebook updates
EMA_RESTART = "#A0522D"    # EMA + restarts
KEPT = "#CC79A7"           # warm-up without re-initializing the codebook
CAPACITY = "#1B1B1B"       # a larger or wider model
LIBRARY = "#4D4D4D"        # vector-quantize-pytorch with its defaults
REFERENCE = "#9A9A9A"      # reference lines (real data, K, log 10)
# The remedies of chapter 8 beyond deferred, EMA and restart (Paul Tol's muted colours, distinct from the above).
DEFERRED_EMA = "#117733"   # deferred quantization with an EMA codebook: a darker shade of the healthy green
AFFINE = "#44AA99"         # affine reparameterization of the codes (Huh et al. 2023)
SIMVQ = "#332288"          # linear reparameterization, SimVQ
COSINE = "#999933"         # cosine search, low-dimensional lookup (ViT-VQGAN)
ROTATION = "#882255"       # rotation trick
FSQ = "#DDCC77"            # finite scalar quantization: no codebook

# First match wins: more specific patterns come first.
_RULES: tuple[tuple[str, str], ...] = (
    (r"keep", KEPT),
    (r"\bfsq\b|finite scalar", FSQ),
    (r"affine", AFFINE),
    (r"simvq|linear reparam", SIMVQ),
    (r"cosine|low-dim", COSINE),
    (r"rotation", ROTATION),
    (r"deferred \+ ema", DEFERRED_EMA),
    (r"ema \+ restart|ema\+restart", EMA_RESTART),
    (r"deferred \+ restart", EMA_RESTART),
    (r"\bema\b", EMA),
    (r"restart|dead_code|dead code", RESTART),
    (r"larger model|wide encoder|wider", CAPACITY),
    (r"deferred|healthy|re-init|\btrained\b", HEALTHY),
    (r"untrained|shrunk|k-means joint|kmeans_init=true \(joint\)|^joint|baseline", SHRUNK),
    (r"raw data|inputs", RAW_DATA),
    (r"uniform", UNIFORM),
    (r"normal", SMALL_RANDOM),
    (r"library default", LIBRARY),
    (r"real|reference|linear", REFERENCE),
)
_FALLBACK = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8E5FB5", "#A0522D")


def _lighter(hex_colour: str, amount: float = 0.45) -> str:
    r, g, b = to_rgb(hex_colour)
    return to_hex((r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount))


def colour(label: str) -> str | None:
    """The study's fixed colour for a condition label, or None when the label names no known condition."""
    text = str(label).lower()
    for pattern, hex_colour in _RULES:
        if re.search(pattern, text):
            if hex_colour not in (SMALL_RANDOM, UNIFORM) and re.search(r"normal", text):
                return _lighter(hex_colour)      # the same fix started from a small normal init
            return hex_colour
    return None


def palette(labels: Iterable) -> dict:
    """label -> colour for every label: the fixed colour where known, else a colour-blind-safe cycle."""
    out, spare = {}, iter(_FALLBACK * 4)
    for label in dict.fromkeys(labels):
        out[label] = colour(label) or next(spare)
    return out


def wrap(label: str, width: int = 26) -> str:
    """A long condition name on at most a few lines (panel titles are a third of the column wide)."""
    return "\n".join(textwrap.wrap(str(label), width)) or str(label)


def apply() -> None:
    """The book's plotting style: seaborn whitegrid, fonts sized for a 7-inch figure, 150 dpi."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind", rc={
        "font.size": LABEL_PT, "axes.labelsize": LABEL_PT, "axes.titlesize": LABEL_PT,
        "xtick.labelsize": FONT_PT, "ytick.labelsize": FONT_PT, "legend.fontsize": FONT_PT,
        "legend.title_fontsize": FONT_PT, "figure.titlesize": LABEL_PT,
        "figure.dpi": DPI, "savefig.dpi": DPI, "figure.figsize": (WIDTH_IN, 3.2),
        "figure.constrained_layout.use": True, "figure.max_open_warning": 0,
        "axes.titlepad": 4.0, "legend.frameon": False,
    })


def figure(nrows: int = 1, ncols: int = 1, panel_height: float = 2.3, width: float = WIDTH_IN,
           squeeze: bool = True, **kwargs):
    """A column-wide figure of ``nrows`` x ``ncols`` panels (at most 3 per row), constrained layout."""
    if not 1 <= ncols <= 3:
        raise ValueError(f"ncols={ncols!r} is invalid: at most 3 panels fit a row of the book's column")
    if not 0 < width <= WIDTH_IN:
        raise ValueError(f"width={width!r} is invalid: expected 0 < width <= {WIDTH_IN} inches")
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, panel_height * nrows + 0.4), squeeze=squeeze,
                             layout="constrained", **kwargs)
    return fig, axes


def grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    """(rows, cols) for n panels, at most ``max_cols`` per row."""
    if n < 1:
        raise ValueError(f"n={n!r} is invalid: expected at least one panel")
    cols = min(n, max_cols)
    return -(-n // cols), cols


def hide_unused(axes, used: int) -> None:
    for ax in list(getattr(axes, "flat", axes))[used:]:
        ax.set_visible(False)


def condition_handles(labels: Sequence[str], numbered: bool = False) -> tuple[list, list[str]]:
    pal = palette(labels)
    handles = [Patch(facecolor=pal[lab], edgecolor="none") for lab in labels]
    texts = [f"{i}. {lab}" if numbered else str(lab) for i, lab in enumerate(labels, 1)]
    return handles, texts


def reference_handle(label: str, ls: str = "--", colour_: str = REFERENCE) -> tuple[Line2D, str]:
    return Line2D([], [], color=colour_, ls=ls, lw=1), label


def shared_legend(fig, handles: Sequence, labels: Sequence[str], ncol: int | None = None,
                  title: str | None = None) -> None:
    """One legend for the whole figure, above the panels (never covering data)."""
    for ax in fig.axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if ncol is None:
        ncol = _legend_columns([str(t) for t in labels])
    fig.legend(handles, labels, loc="outside upper center", ncol=ncol, title=title, handlelength=1.6,
               columnspacing=1.2)


def _legend_columns(labels: list[str], width: float = WIDTH_IN - 0.3) -> int:
    """The most columns (at most 3) whose longest entries fit side by side in ``width`` inches.

    Matplotlib fills a legend column by column; a character of the legend font is about 0.075 inch wide.
    """
    for ncol in (3, 2):
        if len(labels) < ncol:
            continue
        rows = -(-len(labels) // ncol)
        columns = [labels[i:i + rows] for i in range(0, len(labels), rows)]
        if sum(0.45 + 0.075 * max(map(len, col)) for col in columns) <= width:
            return ncol
    return 1


def legend_from(ax, fig, ncol: int | None = None, title: str | None = None) -> None:
    """A figure legend from one panel's lines (e.g. seaborn hue levels), replacing every panel legend."""
    handles, labels = ax.get_legend_handles_labels()
    seen = {}
    for h, lab in zip(handles, labels):
        seen.setdefault(lab, h)
    shared_legend(fig, list(seen.values()), list(seen), ncol=ncol, title=title)


def _drawn(text: Text) -> bool:
    return text.get_visible() and bool(text.get_text().strip()) and (text.axes is None or text.axes.get_visible())


def smallest_font_pt(fig) -> float:
    """The smallest font (points) of any text the figure draws."""
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if _drawn(t)]
    return float(min(sizes)) if sizes else float(mpl.rcParams["font.size"])


def legible_px(font_pt: float, dpi: float, width_px: float, column_px: float = COLUMN_PX) -> float:
    """CSS pixel height of a ``font_pt`` font in a ``width_px``-wide image drawn at ``dpi``, shown in the column.

    An image narrower than the column is shown at its natural size (1 image pixel per CSS pixel);
    a wider one is scaled down to the column.
    """
    if dpi <= 0 or width_px <= 0:
        raise ValueError(f"dpi={dpi!r} and width_px={width_px!r} must be positive")
    return font_pt * dpi / 72 * min(1.0, column_px / width_px)


def figure_metadata(fig) -> dict:
    width, height = fig.get_size_inches()
    return {"dpi": float(fig.dpi), "min_font_pt": round(smallest_font_pt(fig), 2),
            "width_in": round(float(width), 3), "height_in": round(float(height), 3)}


def plain_log_ticks(fig) -> None:
    """Base-10 log axes labelled 0.5, 1, 2, 5, 10 ... instead of 6x10^0 minor labels that collide."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for ax in fig.axes:
        for axis, lim in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            if axis.get_scale() != "log" or getattr(axis.get_transform(), "base", 10) != 10:
                continue
            low, high = sorted(lim)
            decades = math.log10(high / low) if low > 0 else 99
            if decades <= 6 and low >= 1e-3 and high < 1e5:      # else 10^-5 style labels read better
                subs = (1.0, 2.0, 5.0) if decades < 2.5 else (1.0,)
                axis.set_major_locator(LogLocator(base=10, subs=subs))
                axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())


def show(fig) -> None:
    """Display the figure with its font/dpi record in the output metadata, then close it."""
    from IPython.display import display

    plain_log_ticks(fig)
    display(fig, metadata={METADATA_KEY: figure_metadata(fig)})
    plt.close(fig)


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG image")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def legibility_problems(png: bytes, metadata: dict | None) -> list[str]:
    """Why a stored figure would be illegible in the book's column (empty list: it is legible).

    ``metadata`` is the notebook output's metadata; :func:`show` records the figure's dpi and smallest font
    there. A figure without that record was not drawn with the book's style, so its scale is unknown.
    """
    width_px, _ = png_size(png)
    record = (metadata or {}).get(METADATA_KEY)
    if not record:
        return [f"{width_px} px wide figure has no '{METADATA_KEY}' record: show it with vqstudy.style.show(fig)"]
    problems = []
    px = legible_px(record["min_font_pt"], record["dpi"], width_px)
    if px < MIN_FONT_PX:
        problems.append(f"smallest font {record['min_font_pt']:g} pt in a {width_px} px image at {record['dpi']:g} "
                        f"dpi renders {px:.1f} CSS px high at {COLUMN_PX} px (needs {MIN_FONT_PX:g})")
    if width_px / record["dpi"] > WIDTH_IN * 1.1:
        problems.append(f"{width_px / record['dpi']:.1f} in wide: wider than a {WIDTH_IN:g}-inch column figure")
    return problems
