"""Block diagrams drawn by code: a vertical stack of labelled boxes, an optional skip arrow and a "+" node.

The same function draws a plain stack of layers, the original (post-activation) residual block, the
pre-activation block, a bottleneck or a projection shortcut, so every chapter can show the block it
talks about without copying an image from elsewhere. Data flows from the top (input) to the bottom.

Colours follow :data:`skipflow.plots.COLORS`: a plain stack is red, a residual block with nothing after the
sum blue, and a block with something after the sum (a post-activation block) orange, as in the chapters'
plots of the same blocks.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

from skipflow._validate import check_choice
from skipflow.plots import COLORS

BOX_W = 2.6
BOX_H = 0.6
GAP = 0.45
# Box fills: light tints of the line colours of plots.COLORS (plain, residual, post-activation).
FILLS = {"plain": "#f2d7d5", "residual": "#d6e4f0", "post": "#f7e7cf"}


def _check_labels(name: str, labels: object, allow_empty: bool = False) -> list[str]:
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise TypeError(f"`{name}` must be a list of strings, e.g. ['Linear', 'ReLU'].")
    labels = list(labels)
    if not allow_empty and not labels:
        raise ValueError(f"`{name}` must hold at least one label.")
    if not all(isinstance(s, str) for s in labels):
        raise TypeError(f"every entry of `{name}` must be a string.")
    return labels


def _arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], color: str) -> None:
    ax.add_patch(
        FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, lw=1.4, color=color, zorder=1)
    )


def _box(ax: plt.Axes, y: float, label: str, face: str, width: float) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (-width / 2, y - BOX_H / 2),
            width,
            BOX_H,
            boxstyle="round,pad=0.05",
            facecolor=face,
            edgecolor="#333333",
            lw=1.0,
            zorder=2,
        )
    )
    ax.text(0, y, label, ha="center", va="center", fontsize=10, zorder=3)


def draw_stack(
    labels: Sequence[str],
    ax: plt.Axes | None = None,
    *,
    skip: bool = True,
    skip_label: str = "identity",
    after: Sequence[str] = (),
    input_label: str = "$h_{l-1}$",
    output_label: str = "$h_l$",
    title: str = "",
    color: str | None = None,
    line_color: str | None = None,
) -> plt.Axes:
    """Draw ``labels`` as a vertical stack of boxes, top to bottom, with an optional skip connection.

    Args:
        labels: the boxes of the branch, in the order data flows through them (e.g. a residual branch F).
        ax: the axes to draw on (a new figure if None).
        skip: draw the shortcut from the input around the boxes into a "+" node below them.
        skip_label: text written along the shortcut ("identity", "1×1 conv, stride 2", ...).
        after: boxes after the "+" node (``["ReLU"]`` for the original post-activation block).
        input_label, output_label: text at the top and bottom ends.
        title: the axes title.
        color: fill colour of the boxes (by default the light tint of :data:`FILLS` for the kind of block).
        line_color: colour of the shortcut and the "+" node. By default plain red when ``skip=False``,
            post-activation orange when ``after`` is not empty, residual blue otherwise.

    Returns:
        The axes, with equal aspect and no ticks.
    """
    labels = _check_labels("labels", labels)
    after = _check_labels("after", after, allow_empty=True)
    if not isinstance(skip, bool):
        raise TypeError("`skip` must be True or False.")
    ax = ax or plt.subplots(figsize=(3.2, 0.9 * (len(labels) + len(after)) + 2.2))[1]
    concept = "plain" if not skip else ("post" if after else "residual")
    line = line_color or COLORS[concept]
    face = color or FILLS[concept]
    step = BOX_H + GAP
    width = max(BOX_W, 0.16 * max(len(s) for s in [*labels, *after]) + 0.5)
    y_in = 0.0
    ax.text(0, y_in + 0.25, input_label, ha="center", va="bottom", fontsize=11)
    split_y = y_in - 0.25
    ys = [split_y - GAP - BOX_H / 2 - i * step for i in range(len(labels))]
    _arrow(ax, (0, y_in + 0.2), (0, ys[0] + BOX_H / 2), "#333333")
    for i, (y, label) in enumerate(zip(ys, labels, strict=True)):
        _box(ax, y, label, face, width)
        if i + 1 < len(ys):
            _arrow(ax, (0, y - BOX_H / 2), (0, ys[i + 1] + BOX_H / 2), "#333333")
    y_last = ys[-1] - BOX_H / 2
    if skip:
        r = 0.22
        y_plus = y_last - GAP - r
        _arrow(ax, (0, y_last), (0, y_plus + r), "#333333")
        ax.add_patch(Circle((0, y_plus), r, facecolor="white", edgecolor=line, lw=1.6, zorder=2))
        ax.text(0, y_plus, "+", ha="center", va="center", fontsize=13, color=line, zorder=3)
        x_side = width / 2 + 0.55
        ax.plot([0, x_side, x_side], [split_y, split_y, y_plus], color=line, lw=1.8, zorder=1)
        _arrow(ax, (x_side, y_plus), (r, y_plus), line)
        ax.plot([0], [split_y], marker="o", color=line, ms=5, zorder=3)
        ax.text(
            x_side + 0.12,
            (split_y + y_plus) / 2,
            skip_label,
            rotation=90,
            ha="left",
            va="center",
            fontsize=9,
            color=line,
        )
        y_cur = y_plus - r
    else:
        y_cur = y_last
    for label in after:
        y = y_cur - GAP - BOX_H / 2
        _arrow(ax, (0, y_cur), (0, y + BOX_H / 2), "#333333")
        _box(ax, y, label, face, width)
        y_cur = y - BOX_H / 2
    _arrow(ax, (0, y_cur), (0, y_cur - GAP), "#333333")
    ax.text(0, y_cur - GAP - 0.05, output_label, ha="center", va="top", fontsize=11)
    ax.set_xlim(-width / 2 - 0.4, width / 2 + 1.3)
    ax.set_ylim(y_cur - GAP - 0.6, y_in + 0.75)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=11)
    return ax


def share_limits(axes: Sequence[plt.Axes]) -> None:
    """Give diagrams drawn side by side the same limits, so their inputs and titles line up at the top.

    Every diagram starts at y = 0 (its input) and grows downwards; the common limits span the tallest and
    the widest of them, and each diagram keeps its equal aspect.
    """
    axes = list(axes)
    if not axes or not all(isinstance(ax, plt.Axes) for ax in axes):
        raise TypeError("`axes` must be a non-empty list of matplotlib Axes.")
    lows, highs = zip(*(ax.get_ylim() for ax in axes), strict=True)
    lefts, rights = zip(*(ax.get_xlim() for ax in axes), strict=True)
    for ax in axes:
        ax.set_ylim(min(lows), max(highs))
        ax.set_xlim(min(lefts), max(rights))


BLOCKS = {
    "plain": (["Linear", "ReLU", "Linear", "ReLU"], False, []),
    "post": (["Linear", "ReLU", "Linear"], True, ["ReLU"]),
    "identity": (["Linear", "ReLU", "Linear"], True, []),
    "pre": (["Norm", "ReLU", "Linear", "Norm", "ReLU", "Linear"], True, []),
    "bottleneck": (["1×1 conv, BN, ReLU", "3×3 conv, BN, ReLU", "1×1 conv, BN"], True, ["ReLU"]),
}


def draw_block(kind: str, ax: plt.Axes | None = None, title: str | None = None, **kwargs: object) -> plt.Axes:
    """Draw one of the standard blocks of ``BLOCKS`` by name with :func:`draw_stack`.

    ``"plain"`` (no shortcut), ``"post"`` (ReLU after the sum, the original ResNet), ``"identity"`` (nothing
    after the sum), ``"pre"`` (full pre-activation) or ``"bottleneck"``. Extra keywords go to draw_stack.
    """
    check_choice("kind", kind, BLOCKS)
    labels, skip, after = BLOCKS[kind]
    kwargs.setdefault("skip", skip)
    kwargs.setdefault("after", after)
    return draw_stack(labels, ax, title=kind if title is None else title, **kwargs)
