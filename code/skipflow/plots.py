"""Matplotlib helpers so every figure in the course shares one style.

Conventions: gradient norms go on a log scale; plain networks are drawn in red, residual ones in blue;
every axis has a label and every figure a title, because the static HTML has no tooltip to explain them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch

COLORS = {
    "plain": "#c0392b",
    "residual": "#2471a3",
    "pre": "#2471a3",
    "post": "#d68910",
    "neutral": "#566573",
}
#: One colour per block ordering of chapter 4, (a)-(e), in every figure and explorer: (a) original shares
#: post-activation's colour and (e) full pre-activation shares pre-activation's.
ORDERING_COLORS = {
    "original": COLORS["post"],
    "bn_after_add": "#7d3c98",
    "relu_before_add": "#17a589",
    "relu_only_preact": "#a04000",
    "full_preact": COLORS["pre"],
}
#: One colour per way of taming the residual stream's variance (chapter 5), in every figure: BatchNorm shares
#: the "neutral" grey; "none" is plain-network red, the failure case.
FIX_COLORS = {
    "none": COLORS["plain"],
    "batchnorm": COLORS["neutral"],
    "sqrt_depth": "#229954",
    "rezero": "#7d3c98",
    "fixup": "#d68910",
}
# --- chapter 1 colours (one constant per concept; used by every figure of that concept) ---
#: Network depth in chapter 1's init grid, light (shallow) to dark (deep): one grey scale, so that no
#: concept colour above takes a second meaning. (Series with no concept of their own use COLORS["neutral"].)
DEPTH_COLORS = {5: "#8a9497", 20: "#4d5b6a", 50: "#17202a"}
# --- chapter 2 colours (one constant per concept; used by every figure of that concept) ---
# --- chapter 3 colours (one constant per concept; used by every figure of that concept) ---
#: Chapter 3: "exact" is the exact decomposition of the input gradient by path length (a_k, c_k, the
#: recursion); "sampled" is Veit et al.'s sampled measure and every sampling estimate; "weight" the
#: branch-weight gradient (c^W_k); "first_order" the first-order prediction -<g_l, Delta_l> of a lesion;
#: "plain_bn" the plain MLP with BatchNorm. Lesions of the residual network stay COLORS["residual"], the
#: share of all paths COLORS["neutral"].
PATH_COLORS = {
    "exact": "#17a589",
    "sampled": "#7d3c98",
    "weight": "#a04000",
    "first_order": "#1c2833",
    "plain_bn": "#7b241c",
}
# --- chapter 4 colours (one constant per concept; used by every figure of that concept) ---
#: One colour per shortcut variant of chapter 4 (He et al. 2016b, Table 1), keyed by the chapter's variant
#: names: the identity is pre-activation's blue, the two gates are greens, and the variants that shrink or
#: randomize the shortcut at every block are shades of magenta (none is an ordering's colour).
SHORTCUT_COLORS = {
    "identity": COLORS["pre"],
    "exclusive gating, b_g = −6": "#1e8449",
    "shortcut-only gating, b_g = −6": "#58d68d",
    "scaling 0.5 / 0.5": "#6c1d45",
    "scaling 0.5 / 1": "#a93677",
    "1×1 projection": "#d35fa0",
    "dropout 0.5": "#e39bc6",
}
# --- chapter 5 colours (one constant per concept; used by every figure of that concept) ---
#: Chapter 5: a measured series next to the reference it is read against (a prediction, a flop share, a line
#: proportional to bytes), and a residual network trained with stochastic depth (without: COLORS["residual"]).
CH5_COLORS = {"measured": "#212f3d", "reference": "#99a3a4", "stochastic_depth": "#a93279"}
# --- chapter 6 colours (one constant per concept; used by every figure of that concept) ---
#: Chapter 6's concepts that have no colour above: attention with a plain skip and no LayerNorm (Pre-LN keeps
#: COLORS["pre"], a 1/√L branch FIX_COLORS["sqrt_depth"]), and the hyper-connection mixers, unconstrained
#: and doubly stochastic (Sinkhorn-projected).
TRANSFORMER_COLORS = {"attn_skip": "#17becf", "mixer_free": "#a04000", "mixer_sinkhorn": "#7d3c98"}
CYCLE = ["#2471a3", "#c0392b", "#229954", "#d68910", "#7d3c98", "#17a589", "#566573", "#a04000"]


def use_style() -> None:
    """Apply the course's matplotlib style (called by :func:`skipflow.setup_notebook`)."""
    mpl.rcParams.update(
        {
            "figure.figsize": (7.0, 4.0),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlesize": 12,
            "axes.labelsize": 11,
            "legend.fontsize": 9,
            "legend.frameon": False,
            "axes.prop_cycle": mpl.cycler(color=CYCLE),
        }
    )


#: The book's text column is about 690 px wide; a wider figure image is shrunk to fit it.
COLUMN_PX = 690
#: The smallest text a figure may show in that column, in CSS pixels.
MIN_TEXT_PX = 9.0


def rendered_text_px(fig, column_px: int = COLUMN_PX) -> float:
    """The size, in CSS pixels, of the smallest visible text of ``fig`` once shown in the book's column.

    Jupyter renders a figure at ``fig.dpi``; the page shows the image at its natural width or, if wider than
    the column, shrunk to the column. So a point of font size becomes ``dpi / 72 * min(1, column / width)``
    pixels. The width is the image's, not the figure's: the inline backend saves with ``bbox_inches="tight"``
    (and 0.1 inch of padding), which crops empty margins but also widens the image when a legend or label
    sits outside the figure.
    """
    from matplotlib.text import Text

    if not isinstance(column_px, int) or column_px <= 0:
        raise ValueError(f"`column_px` must be a positive int, got {column_px!r}.")
    sizes = [
        t.get_fontsize()
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and t.get_figure() is not None
    ]
    # Tick labels get their text only when the figure is drawn; their size is known before.
    for ax in fig.axes:
        if not (ax.get_visible() and ax.axison):
            continue
        for axis in (ax.xaxis, ax.yaxis):
            ticks = axis.get_major_ticks()[:1] if axis.get_visible() else []
            sizes += [
                label.get_fontsize() for t in ticks for label in (t.label1, t.label2) if label.get_visible()
            ]
    if not sizes:
        return float("inf")
    width_px = (fig.get_tightbbox().width + 2 * mpl.rcParams["savefig.pad_inches"]) * fig.dpi
    return min(sizes) / 72 * fig.dpi * min(1.0, column_px / width_px)


def _as_array(values: Sequence[float] | torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=float)


def plot_per_layer(
    series: Mapping[str, Sequence[float] | torch.Tensor],
    ax: plt.Axes | None = None,
    title: str = "",
    ylabel: str = r"$\Vert \partial \mathcal{L} / \partial W \Vert$",
    xlabel: str = "layer (1 = closest to the input)",
    log: bool = True,
    colors: Mapping[str, str] | None = None,
) -> plt.Axes:
    """One line per entry of ``series`` (label → per-layer values), layers numbered from 1."""
    if not isinstance(series, Mapping) or not series:
        raise TypeError("`series` must be a non-empty dict mapping a label to per-layer values.")
    ax = ax or plt.subplots()[1]
    for label, values in series.items():
        y = _as_array(values)
        color = (colors or {}).get(label)
        ax.plot(np.arange(1, len(y) + 1), y, marker="o", ms=3, label=label, color=color)
    if log:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend()
    return ax


def plot_band(
    runs: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
    ax: plt.Axes,
    label: str,
    color: str | None = None,
    x: Sequence[float] | None = None,
    log: bool = False,
) -> plt.Axes:
    """Median of several runs (rows) as a line, with the min-max band across runs shaded."""
    arr = _as_array(runs)
    if arr.ndim != 2:
        raise ValueError("`runs` must be 2-D: one row per seed, one column per step or layer.")
    xs = np.arange(arr.shape[1]) if x is None else np.asarray(x)
    (line,) = ax.plot(xs, np.median(arr, axis=0), label=label, color=color)
    ax.fill_between(xs, arr.min(axis=0), arr.max(axis=0), color=line.get_color(), alpha=0.2, lw=0)
    if log:
        ax.set_yscale("log")
    return ax


def smooth(values: Sequence[float], window: int = 10) -> np.ndarray:
    """A trailing moving average (for noisy minibatch losses); the first points average what exists."""
    arr = _as_array(values)
    if window < 1:
        raise ValueError("`window` must be >= 1.")
    csum = np.cumsum(np.insert(arr, 0, 0.0))
    out = np.empty_like(arr)
    for i in range(len(arr)):
        lo = max(0, i + 1 - window)
        out[i] = (csum[i + 1] - csum[lo]) / (i + 1 - lo)
    return out


def plot_losses(
    histories: Mapping[str, Sequence],
    ax: plt.Axes | None = None,
    title: str = "Training loss",
    window: int = 10,
    log: bool = True,
    colors: Mapping[str, str] | None = None,
) -> plt.Axes:
    """Smoothed training loss of several configurations, each a list of Histories (one per seed).

    Draws the median across seeds and shades the min-max band, so the spread is visible.
    """
    ax = ax or plt.subplots()[1]
    for label, runs in histories.items():
        n = min(len(h.loss) for h in runs)
        rows = np.stack([smooth(h.loss[:n], window) for h in runs])
        plot_band(rows, ax, label=f"{label} ({len(runs)} seeds)", color=(colors or {}).get(label))
    if log:
        ax.set_yscale("log")
    ax.set(title=title, xlabel="step", ylabel="minibatch loss (smoothed)")
    ax.legend()
    return ax
