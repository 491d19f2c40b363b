"""Explorers that work in the HTML book with no kernel: precomputed grids shown with Vega-Lite.

An explorer has two faces fed by one measuring function, so they cannot disagree:

- in a live notebook (Jupyter, Colab), the ipywidgets explorer of :mod:`skipflow.widgets` calls the
  function for whatever setting the reader picks;
- in the HTML book, the functions here call the same function for every setting of a small grid when the
  page is built, and return a self-contained HTML snippet: a Vega-Lite figure whose controls (dropdowns,
  radio buttons) are plain JavaScript that filters the precomputed data, so the figure answers the
  controls without Python.

The snippet loads Vega, Vega-Lite and vega-embed (versions pinned in ``VEGA_VERSIONS``, the same as
``package.json``). In the offline build (``make book OFFLINE=1``) ``tools/offline.py`` vendors them into
``_build/html/_vendor/`` and adds ``_vendor/explorers-setup.js`` to every page, which tells the snippet
where they are, so nothing is fetched from the network. Elsewhere (a normal build, a notebook) they come
from a pinned CDN URL. A picture of the default setting sits in a ``<noscript>`` element, for readers
without JavaScript, and is shown in place of the figure if the scripts cannot load.

The three explorers:

- :func:`gradient_flow_explorer_html` (chapter 1): ‖∂𝓛/∂W_l‖ per layer at initialization, by depth,
  activation, init, normalization and plain/residual; data from
  :func:`skipflow.widgets.measure_gradient_flow`;
- :func:`ordering_explorer_html` (chapter 4): ‖∂𝓛/∂h_l‖ along the residual stream for the block orderings
  (a)–(e) by depth; data from :func:`skipflow.widgets.ordering_gradients`;
- :func:`branch_scale_explorer_html` (chapter 5): Var(h_l)/Var(h_0) in an unnormalized residual MLP for a
  branch scale α = 1, 1/√L or 0, by depth; data from :func:`branch_scale_variances`.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from skipflow import runtime
from skipflow._validate import check_choice, check_int
from skipflow.plots import CH5_COLORS, FIX_COLORS

__all__ = [
    "BRANCH_SCALES",
    "VEGA_VERSIONS",
    "Control",
    "Explorer",
    "branch_scale_explorer_html",
    "branch_scale_variances",
    "gradient_flow_explorer_html",
    "ordering_explorer_html",
]

#: The npm packages the figures need, at the versions package.json pins (a test checks they agree).
VEGA_VERSIONS = {"vega": "6.4.0", "vega-lite": "6.5.0", "vega-embed": "7.3.0"}
#: Where each package's browser build lives, under the package (and under ``_vendor/<package>/``).
VEGA_FILES = {
    "vega": "build/vega.min.js",
    "vega-lite": "build/vega-lite.min.js",
    "vega-embed": "build/vega-embed.min.js",
}
CDN = "https://cdn.jsdelivr.net/npm/"
SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"  # an identifier: vega-embed never fetches it

#: The branch scales of chapter 5, by the label the reader sees, with the ``skipflow.normfree`` fix
#: that builds each: α = 1 (no fix), α = 1/√L, and α = 0 (ReZero/SkipInit's start).
BRANCH_SCALES = {"1": "none", "1/√L": "sqrt_depth", "0": "rezero"}


@dataclass(frozen=True)
class Control:
    """One control of an explorer: a Vega-Lite parameter bound to a dropdown or radio buttons.

    ``values`` are the settings the grid covers (what the data records hold); ``labels`` what the reader
    sees for each (default: the values themselves).
    """

    name: str
    label: str
    values: tuple[Any, ...]
    default: Any
    input: str = "select"
    labels: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"`name` must be a JavaScript identifier, got {self.name!r}.")
        check_choice("input", self.input, ("select", "radio"))
        if not self.values:
            raise ValueError(f"control {self.name!r}: `values` must not be empty.")
        check_choice(f"default of {self.name}", self.default, self.values)
        if self.labels is not None and len(self.labels) != len(self.values):
            raise ValueError(f"control {self.name!r}: `labels` needs one label per value.")

    def param(self) -> dict[str, Any]:
        bind: dict[str, Any] = {"input": self.input, "options": list(self.values), "name": self.label + " "}
        if self.labels is not None:
            bind["labels"] = list(self.labels)
        return {"name": self.name, "value": self.default, "bind": bind}


@dataclass
class Explorer:
    """A precomputed explorer: its data records, Vega-Lite spec, fallback picture and HTML snippet.

    A notebook cell that ends with an ``Explorer`` displays the interactive figure (``_repr_html_``).
    """

    name: str
    controls: tuple[Control, ...]
    records: list[dict[str, Any]]
    spec: dict[str, Any]
    fallback_png: bytes
    html: str
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)

    def _repr_html_(self) -> str:
        return self.html

    def record(self, **setting: Any) -> list[dict[str, Any]]:
        """The data records of one setting (one per series drawn)."""
        return [r for r in self.records if all(r[k] == v for k, v in setting.items())]


# ----------------------------------------------------------------------------------------------------------
# The data of one setting
# ----------------------------------------------------------------------------------------------------------


def branch_scale_variances(
    alpha: str = "1",
    n_blocks: int = 32,
    n_seeds: int = 3,
    width: int = 64,
    batch: int = 256,
) -> torch.Tensor:
    """Var(h_l) / Var(h_0) for l = 0 … L in an unnormalized residual MLP, one row per seed (0, 1, …).

    The network is :func:`skipflow.normfree.build` with ``n_blocks`` two-layer pre-activation ReLU blocks
    and Kaiming init, every branch multiplied by ``alpha``: ``"1"`` (no fix), ``"1/√L"`` (the
    ``"sqrt_depth"`` fix) or ``"0"`` (ReZero/SkipInit: each block starts as the identity). The variances
    are taken over the first ``batch`` training images of the digits, as chapter 5 does.
    """
    check_choice("alpha", alpha, BRANCH_SCALES)
    check_int("n_blocks", n_blocks, minimum=1)
    check_int("n_seeds", n_seeds, minimum=1)
    check_int("width", width, minimum=1)
    check_int("batch", batch, minimum=2)
    from skipflow import normfree
    from skipflow.widgets.orderings import _digits

    x = _digits().x_train[:batch]
    rows = []
    for seed in range(n_seeds):
        runtime.manual_seed(seed)
        net = normfree.build(BRANCH_SCALES[alpha], n_blocks, width=width).train()
        # normfree.stream_variances's loop (a test checks they agree), without its defensive deep copy of
        # the net, which this throwaway net does not need and which would double the cost of the grid.
        rows.append(_relative_stream_variances(net, x))
    return torch.stack(rows)


@torch.no_grad()
def _relative_stream_variances(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Var(h_l) / Var(h_0) along the stream of a :mod:`skipflow.normfree` net, for l = 0 … L."""
    h = net.stem(x)
    v = [h.var()]
    for block in net.blocks:
        h = block(h)
        v.append(h.var())
    v = torch.stack(v).double()
    return v / v[0]


def _branch_scale_grid(
    n_blocks: Sequence[int], n_seeds: int, width: int = 64, batch: int = 256
) -> dict[tuple[str, int], torch.Tensor]:
    """:func:`branch_scale_variances` for every α of ``BRANCH_SCALES`` and every L, building each net once.

    For one seed and one L the three settings build the same weights (α is not drawn at random), so each
    net is built once and run with each α in turn: the same numbers as three separate calls, at a third of
    the building cost. A ReZero α is a trained parameter and the others a buffer; at 0 the forward is the
    same.
    """
    from skipflow import normfree
    from skipflow.widgets.orderings import _digits

    x = _digits().x_train[:batch]
    scale = {"1": lambda n: 1.0, "1/√L": lambda n: 1.0 / math.sqrt(n), "0": lambda n: 0.0}
    out: dict[tuple[str, int], list[torch.Tensor]] = {(a, n): [] for a in BRANCH_SCALES for n in n_blocks}
    for n in n_blocks:
        for seed in range(n_seeds):
            runtime.manual_seed(seed)
            net = normfree.build("none", n, width=width).train()
            with torch.no_grad():
                for alpha in BRANCH_SCALES:
                    normfree.scale_branches(net, scale[alpha](n))
                    out[alpha, n].append(_relative_stream_variances(net, x))
    return {key: torch.stack(rows) for key, rows in out.items()}


def _summary(runs: torch.Tensor) -> dict[str, list[float]]:
    """Median, min and max over the rows (seeds), rounded to 4 significant digits for the page.

    A value that is not finite (a training run that diverged) becomes None: JSON's null, a gap in the line.
    """
    arr = runs.detach().double().cpu().numpy()
    if arr.ndim != 2:
        raise ValueError("`runs` must be 2-D: one row per seed.")

    def r(values: np.ndarray) -> list[float | None]:
        return [float(f"{v:.4g}") if math.isfinite(v) else None for v in values]

    return {"med": r(np.median(arr, axis=0)), "lo": r(arr.min(axis=0)), "hi": r(arr.max(axis=0))}


def _grid(controls: Sequence[Control], skip: Sequence[str] = ()) -> list[dict[str, Any]]:
    names = [c.name for c in controls if c.name not in skip]
    values = [c.values for c in controls if c.name not in skip]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


# ----------------------------------------------------------------------------------------------------------
# Chapter 1: gradient flow by layer
# ----------------------------------------------------------------------------------------------------------

FLOW_NORMS = {"none": None, "batch": "batch"}


def gradient_flow_explorer_html(
    depths: Sequence[int] = (10, 20, 40),
    n_seeds: int = 1,
    precomputed: Mapping[tuple, torch.Tensor] | None = None,
) -> Explorer:
    """Chapter 1's explorer: ‖∂𝓛/∂W_l‖ per Linear layer at initialization, for every setting of the grid.

    The grid is every depth in ``depths`` (even numbers, so the residual net has two layers per block),
    every activation and init, no norm or BatchNorm, plain and residual: each setting measured by
    :func:`skipflow.widgets.measure_gradient_flow` with ``n_seeds`` seeds. ``precomputed`` maps a setting
    ``(depth, activation, init, norm, residual)`` (the function's own arguments) to runs already measured
    with ``n_seeds`` seeds, to reuse them. The default setting is ``GRADIENT_FLOW_DEFAULTS``.
    """
    from skipflow.models import INITS
    from skipflow.plots import COLORS
    from skipflow.widgets.gradient_flow import FLOW_ACTIVATIONS, GRADIENT_FLOW_DEFAULTS, measure_gradient_flow

    depths = _check_depths("depths", depths, even=True)
    check_int("n_seeds", n_seeds, minimum=1)
    d = GRADIENT_FLOW_DEFAULTS
    if d["depth"] not in depths:
        raise ValueError(f"`depths` must include the default depth {d['depth']}, got {list(depths)}.")
    controls = (
        Control("depth", "depth (layers)", tuple(depths), d["depth"], "radio"),
        Control("activation", "activation", tuple(FLOW_ACTIVATIONS), d["activation"]),
        Control("init", "init", tuple(INITS), d["init"]),
        Control("norm", "normalization", tuple(FLOW_NORMS), "none", "radio", ("none", "BatchNorm")),
        Control("network", "network", ("both", "plain", "residual"), "both", "radio"),
    )

    def measure(setting: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for kind in ("plain", "residual"):
            args = (setting["depth"], setting["activation"], setting["init"], FLOW_NORMS[setting["norm"]])
            key = (*args, kind == "residual")
            runs = _lookup(precomputed, key, n_seeds)
            if runs is None:
                runs = measure_gradient_flow(*key, n_seeds=n_seeds)
            out.append({**setting, "kind": kind, **_summary(runs.clamp_min(1e-300))})
        return out

    start = time.perf_counter()
    records = [r for s in _grid(controls, skip=("network",)) for r in measure(s)]
    seconds = time.perf_counter() - start
    seeds = f"{n_seeds} seed{'s' if n_seeds > 1 else ''}"
    band = ", median and min–max band" if n_seeds > 1 else ""
    spec = _line_spec(
        records,
        controls,
        filter_expr=(
            "datum.depth == depth && datum.activation == activation && datum.init == init"
            " && datum.norm == norm && (network == 'both' || datum.kind == network)"
        ),
        x_title="Linear layer l (1 = next to the input)",
        y_title="‖∂L/∂Wₗ‖ (log scale)",
        x_start=1,
        color_field="kind",
        color_domain=["plain", "residual"],
        color_range=[COLORS["plain"], COLORS["residual"]],
        title_expr=(
            "['Gradient per layer at initialization', depth + ' layers, ' + activation + ', ' + init"
            " + ' init, ' + (norm == 'none' ? 'no norm' : 'BatchNorm')]"
        ),
        subtitle=[f"{seeds} per network{band};", "residual: pre-activation, two layers per block"],
    )
    # The norms span up to 40 decades: label the y axis in powers of ten, in a font large enough
    # for the superscript exponents to stay legible.
    for layer in spec["layer"]:
        layer["encoding"]["y"]["axis"] = {"labelExpr": POWER_OF_TEN_LABEL, "labelFontSize": 14}
    return _finish("gradient_flow", controls, records, spec, seconds, color_field="kind", x_start=1)


def _superscript(expr: str) -> str:
    """A Vega expression that writes the digits and minus sign of the string ``expr`` as superscripts."""
    for plain, sup in zip("0123456789-−", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁻", strict=True):
        expr = f"replace({expr}, regexp('{plain}', 'g'), '{sup}')"
    return expr


_EXPONENT = "round(log(datum.value) / LN10)"
_EXPONENT_TEXT = _superscript(f"format({_EXPONENT}, 'd')")
#: A Vega ``labelExpr`` for a log axis: 10⁻⁸ at a power of ten, a plain number (0.2, 5) between them.
POWER_OF_TEN_LABEL = (
    f"abs(log(datum.value) / LN10 - {_EXPONENT}) < 1e-6 ? '10' + {_EXPONENT_TEXT} : format(datum.value, '~g')"
)


# ----------------------------------------------------------------------------------------------------------
# Chapter 4: block ordering × depth
# ----------------------------------------------------------------------------------------------------------


def ordering_explorer_html(
    n_blocks: Sequence[int] = (10, 50),
    n_seeds: int = 3,
    train_steps: int = 20,
    precomputed: Mapping[tuple, torch.Tensor] | None = None,
    precomputed_losses: Mapping[tuple, torch.Tensor] | None = None,
) -> Explorer:
    """Chapter 4's explorer: per ordering and depth, ‖∂𝓛/∂h_l‖ at initialization and the training curve.

    The grid is every ordering (a)–(e) of :mod:`skipflow.orderings` at every depth in ``n_blocks``. The
    "gradient" view draws :func:`skipflow.widgets.ordering_gradients` at initialization (``n_seeds``
    seeds); the "loss" view draws the minibatch loss of the first ``train_steps`` SGD steps of one seed,
    from :func:`skipflow.widgets.ordering_training`. Each view draws the chosen ordering next to (e) full
    pre-activation. ``precomputed`` maps ``(ordering, n_blocks)`` to gradient runs already measured with
    the same settings, and ``precomputed_losses`` to loss curves (one row), e.g. the chapter's 50-block
    measurements; they are reused. The default setting is ``ORDERING_DEFAULTS``, gradient view.
    """
    from skipflow.orderings import ORDERING_LABELS, ORDERINGS
    from skipflow.plots import ORDERING_COLORS
    from skipflow.widgets.orderings import ORDERING_DEFAULTS, ordering_gradients, ordering_training

    n_blocks = _check_depths("n_blocks", n_blocks)
    check_int("n_seeds", n_seeds, minimum=1)
    check_int("train_steps", train_steps, minimum=1)
    if ORDERING_DEFAULTS["n_blocks"] not in n_blocks:
        raise ValueError(f"`n_blocks` must include the default {ORDERING_DEFAULTS['n_blocks']}.")
    controls = (
        Control(
            "ordering",
            "ordering",
            tuple(ORDERINGS),
            ORDERING_DEFAULTS["ordering"],
            labels=tuple(ORDERING_LABELS[o] for o in ORDERINGS),
        ),
        Control("blocks", "blocks", tuple(n_blocks), ORDERING_DEFAULTS["n_blocks"], "radio"),
        Control(
            "view", "show", ("gradient", "loss"), "gradient", "radio", ("‖∂L/∂hₗ‖ at init", "training loss")
        ),
    )
    start = time.perf_counter()
    records = []
    for setting in _grid(controls, skip=("view",)):
        key = (setting["ordering"], setting["blocks"])
        series = ORDERING_LABELS[setting["ordering"]]
        runs = _lookup(precomputed, key, n_seeds)
        if runs is None:
            runs = ordering_gradients(*key, 0, n_seeds=n_seeds)
        records.append({**setting, "view": "gradient", "x0": 0, "series": series, **_summary(runs)})
        losses = _lookup(precomputed_losses, key, 1)
        if losses is None:
            losses = ordering_training(*key, train_steps, n_seeds=1).losses
        if losses.shape[1] != train_steps:
            raise ValueError(f"`precomputed_losses[{key!r}]` must have train_steps = {train_steps} columns.")
        records.append({**setting, "view": "loss", "x0": 1, "series": series, **_summary(losses)})
    seconds = time.perf_counter() - start
    # The reference curves: (e) at the chosen depth, drawn under its own series name.
    for r in [r for r in records if r["ordering"] == "full_preact"]:
        for other in ORDERINGS:
            if other != "full_preact":
                records.append({**r, "ordering": other, "series": ORDERING_LABELS["full_preact"]})
    labels = [ORDERING_LABELS[o] for o in ORDERINGS]
    names = json.dumps(dict(zip(ORDERINGS, labels, strict=True)), ensure_ascii=False)
    spec = _line_spec(
        records,
        controls,
        filter_expr="datum.ordering == ordering && datum.blocks == blocks && datum.view == view",
        x_title="block output l (gradient) · SGD step (loss)",
        y_title="‖∂L/∂hₗ‖ or minibatch loss (log scale)",
        x_start="x0",
        color_field="series",
        color_domain=labels,
        color_range=[ORDERING_COLORS[o] for o in ORDERINGS],
        title_expr=(
            f"[view == 'loss' ? 'Training loss, first {train_steps} SGD steps (lr 0.1, 1 seed)'"
            f" : 'Gradient on the stream at initialization ({n_seeds} seeds)', "
            + names
            + "[ordering] + ', ' + blocks + ' blocks']"
        ),
        subtitle=["median and min–max band over seeds;", "(e) full pre-activation for reference"],
        legend_values=(
            f"{names}[ordering] == '(e) full pre-activation' ? ['(e) full pre-activation'] : "
            f"[{names}[ordering], '(e) full pre-activation']"
        ),
    )
    return _finish("ordering", controls, records, spec, seconds, color_field="series", x_start="x0")


# ----------------------------------------------------------------------------------------------------------
# Chapter 5: the branch scale α
# ----------------------------------------------------------------------------------------------------------


def branch_scale_explorer_html(
    n_blocks: Sequence[int] = (8, 16, 32, 64),
    n_seeds: int = 3,
    default_blocks: int = 32,
) -> Explorer:
    """Chapter 5's explorer: forward variance Var(h_l)/Var(h_0) for α = 1, 1/√L, 0 at every depth L.

    Each setting is :func:`branch_scale_variances` with ``n_seeds`` seeds. The figure also draws the
    variance-preserving prediction (1 + α²)^l as a dashed line: a branch that preserves the variance of
    its input adds α² times the stream's variance at every block.
    """
    n_blocks = _check_depths("n_blocks", n_blocks)
    check_int("n_seeds", n_seeds, minimum=1)
    check_choice("default_blocks", default_blocks, n_blocks)
    controls = (
        Control("alpha", "branch scale α", tuple(BRANCH_SCALES), "1", "radio"),
        Control("blocks", "blocks L", tuple(n_blocks), default_blocks, "radio"),
    )
    start = time.perf_counter()
    records = []
    # "series" names the data (measured or predicted); "curve" is what the legend shows, and its colour is
    # the colour of the fix that builds that α in chapter 5's figures (FIX_COLORS).
    measured = {alpha: f"measured, α = {alpha}" for alpha in BRANCH_SCALES}
    predicted = "prediction ×(1 + α²) per block"
    grid = _branch_scale_grid(n_blocks, n_seeds)  # = branch_scale_variances of each setting (a test checks)
    for setting in _grid(controls):
        runs = grid[setting["alpha"], setting["blocks"]]
        records.append(
            {**setting, "series": "measured", "curve": measured[setting["alpha"]], **_summary(runs)}
        )
        a2 = {"1": 1.0, "1/√L": 1.0 / setting["blocks"], "0": 0.0}[setting["alpha"]]
        pred = [float(f"{(1 + a2) ** ell:.4g}") for ell in range(setting["blocks"] + 1)]
        series = {"series": "prediction (1 + α²)^l", "curve": predicted}
        records.append({**setting, **series, "med": pred, "lo": pred, "hi": pred})
    seconds = time.perf_counter() - start
    spec = _line_spec(
        records,
        controls,
        filter_expr="datum.alpha == alpha && datum.blocks == blocks",
        x_title="block l (0 = stem output)",
        y_title="Var(h_l) / Var(h_0) (log scale)",
        x_start=0,
        color_field="curve",
        color_domain=[*measured.values(), predicted],
        color_range=[*(FIX_COLORS[fix] for fix in BRANCH_SCALES.values()), CH5_COLORS["reference"]],
        dash_field="series",
        title_expr=(
            "['Forward variance without normalization', 'α = ' + alpha + ', L = ' + blocks + ' blocks']"
        ),
        subtitle=[f"{n_seeds} seeds, median and min–max band;", f"dashed: the {predicted}"],
        legend_values=f"['measured, α = ' + alpha, '{predicted}']",
    )
    # Dashes follow the kind of series, not the curve; the x axis ends at the last block; y in powers of ten.
    dash = spec["layer"][1]["encoding"]["strokeDash"]
    dash["scale"] = {"domain": ["measured", "prediction (1 + α²)^l"], "range": [[1, 0], [6, 4]]}
    spec["encoding"]["x"]["scale"] = {"domainMin": 0, "domainMax": {"expr": "blocks"}, "nice": False}
    for layer in spec["layer"]:
        layer["encoding"]["y"]["axis"] = {"labelExpr": POWER_OF_TEN_LABEL}
    return _finish("branch_scale", controls, records, spec, seconds, color_field="curve", x_start=0)


# ----------------------------------------------------------------------------------------------------------
# The Vega-Lite figure, the fallback picture and the HTML snippet
# ----------------------------------------------------------------------------------------------------------


def _check_depths(name: str, values: Sequence[int], even: bool = False) -> tuple[int, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise TypeError(f"`{name}` must be a sequence of ints, got {type(values).__name__}.")
    if not values:
        raise ValueError(f"`{name}` must not be empty.")
    for v in values:
        check_int(name, v, minimum=2 if even else 1)
        if even and v % 2:
            raise ValueError(f"`{name}` must hold even numbers (two layers per residual block), got {v}.")
    if len(set(values)) != len(values):
        raise ValueError(f"`{name}` has repeated values: {list(values)}.")
    return tuple(sorted(values))


def _lookup(
    precomputed: Mapping[tuple, torch.Tensor] | None, key: tuple, n_seeds: int
) -> torch.Tensor | None:
    if precomputed is None:
        return None
    if not isinstance(precomputed, Mapping):
        raise TypeError(f"`precomputed` must be a mapping, got {type(precomputed).__name__}.")
    runs = precomputed.get(key)
    if runs is None:
        return None
    if not isinstance(runs, torch.Tensor) or runs.dim() != 2 or runs.shape[0] != n_seeds:
        shape = tuple(runs.shape) if isinstance(runs, torch.Tensor) else type(runs).__name__
        raise ValueError(f"`precomputed[{key!r}]` must be a tensor of {n_seeds} rows (seeds), got {shape}.")
    return runs


def _line_spec(
    records: list[dict[str, Any]],
    controls: Sequence[Control],
    *,
    filter_expr: str,
    x_title: str,
    y_title: str,
    x_start: int | str,
    color_field: str,
    color_domain: list[str],
    color_range: list[str],
    title_expr: str,
    subtitle: list[str],
    dash_field: str | None = None,
    legend_values: str | None = None,
) -> dict[str, Any]:
    """A Vega-Lite spec: median lines with min-max bands of the records that match the controls.

    Point i of a record is drawn at x = ``x_start`` + i; ``x_start`` may name a field of the records
    instead, for explorers whose views start counting at different places.
    """
    color = {
        "field": color_field,
        "type": "nominal",
        "title": None,
        "scale": {"domain": color_domain, "range": color_range},
        "legend": {
            "orient": "bottom",
            "direction": "vertical",
            "labelLimit": 320,
            "labelFontSize": 12,
            "symbolType": "stroke",
            "symbolStrokeWidth": 2.5,
        },
    }
    if legend_values is not None:  # list only the series on show, not every colour of the scale
        color["legend"]["values"] = {"expr": legend_values}
    line_encoding: dict[str, Any] = {
        "y": {"field": "med", "type": "quantitative", "scale": {"type": "log"}, "title": y_title},
        "color": color,
        "tooltip": [
            {"field": color_field, "title": " "},
            {"field": "x", "title": "l"},
            {"field": "med", "title": "median", "format": ".3~e"},
        ],
    }
    if dash_field is not None:
        line_encoding["strokeDash"] = {
            "field": dash_field,
            "type": "nominal",
            "scale": {"domain": color_domain, "range": [[1, 0], [6, 4]]},
            "legend": None,
        }
    return {
        "$schema": SCHEMA,
        "width": "container",
        "height": 260,
        "autosize": {"type": "fit-x", "contains": "padding"},
        "params": [c.param() for c in controls],
        "title": {
            "text": {"expr": title_expr},
            "subtitle": subtitle,
            "anchor": "start",
            "fontSize": 13,
            "subtitleFontSize": 11,
            "subtitleColor": "#555",
            "limit": {"expr": "width"},
        },
        "data": {"values": records},
        "transform": [
            {"filter": filter_expr},
            {"flatten": ["med", "lo", "hi"]},
            {"window": [{"op": "row_number", "as": "row"}], "groupby": [color_field]},
            {"calculate": f"datum.row - 1 + {_x_start_expr(x_start)}", "as": "x"},
        ],
        "encoding": {
            "x": {"field": "x", "type": "quantitative", "title": x_title, "axis": {"tickMinStep": 1}}
        },
        "layer": [
            {
                "mark": {"type": "area", "opacity": 0.18},
                "encoding": {
                    "y": {"field": "lo", "type": "quantitative", "scale": {"type": "log"}},
                    "y2": {"field": "hi"},
                    "color": {**color, "legend": None},
                },
            },
            {"mark": {"type": "line", "point": {"size": 18}, "strokeWidth": 2}, "encoding": line_encoding},
        ],
        "resolve": {"legend": {"color": "independent"}},
        "config": {
            "axis": {"labelFontSize": 11, "titleFontSize": 12},
            "view": {"stroke": None},
        },
    }


def _x_start_expr(x_start: int | str) -> str:
    return f"datum[{json.dumps(x_start)}]" if isinstance(x_start, str) else str(int(x_start))


def _finish(
    name: str,
    controls: tuple[Control, ...],
    records: list[dict[str, Any]],
    spec: dict[str, Any],
    seconds: float,
    color_field: str,
    x_start: int | str,
) -> Explorer:
    default = {c.name: c.default for c in controls}
    png = _fallback_png(records, controls, spec, color_field, x_start)
    alt = (
        "Figure at the default setting (" + ", ".join(f"{c.label} {default[c.name]}" for c in controls) + ")"
    )
    snippet = explorer_snippet(spec, png, alt=alt, name=name)
    return Explorer(name, controls, records, spec, png, snippet, seconds, {"default": default})


def _matches(record: dict[str, Any], setting: Mapping[str, Any]) -> bool:
    for key, value in setting.items():
        if key == "network":
            if value != "both" and record["kind"] != value:
                return False
        elif record.get(key) != value:
            return False
    return True


def _fallback_png(
    records: list[dict[str, Any]],
    controls: Sequence[Control],
    spec: dict[str, Any],
    color_field: str,
    x_start: int | str,
) -> bytes:
    """The figure at the default setting, drawn with matplotlib from the same records, as a PNG."""
    from matplotlib.figure import Figure  # no pyplot: the notebook's figures and backend are left alone
    from matplotlib.ticker import MaxNLocator

    default = {c.name: c.default for c in controls}
    scale = spec["layer"][1]["encoding"]["color"]["scale"]
    colors = dict(zip(scale["domain"], scale["range"], strict=True))
    fig = Figure(figsize=(7, 4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for r in records:
        if not _matches(r, default):
            continue
        series = r[color_field]
        xs = np.arange(len(r["med"])) + (r[x_start] if isinstance(x_start, str) else x_start)
        med, lo, hi = (np.array(r[k], dtype=float) for k in ("med", "lo", "hi"))  # None (diverged) -> NaN
        dashed = "prediction" in str(series)
        ax.plot(xs, med, color=colors[series], label=series, ls="--" if dashed else "-")
        ax.fill_between(xs, lo, hi, color=colors[series], alpha=0.18, lw=0)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(spec["encoding"]["x"]["title"])
    ax.set_ylabel(spec["layer"][1]["encoding"]["y"]["title"])
    ax.set_title(", ".join(f"{c.label}: {default[c.name]}" for c in controls), fontsize=10, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False, fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


STYLE = """<style>
.skipflow-explorer{margin:0.5rem 0 1rem;max-width:100%}
.skipflow-explorer .skipflow-explorer-view{width:100%;min-height:2rem}
.skipflow-explorer .vega-embed{width:100%}
.skipflow-explorer .vega-bindings{display:flex;flex-wrap:wrap;gap:0.4rem 1.25rem;margin:0.5rem 0 0;
font-size:0.95rem;line-height:1.6}
.skipflow-explorer .vega-bind{flex:0 1 auto;max-width:100%}
.skipflow-explorer .vega-bind label{display:inline-flex;flex-wrap:wrap;align-items:center;gap:0.2rem 0.4rem;
margin:0}
.skipflow-explorer .vega-bind-name{font-weight:600}
.skipflow-explorer .vega-bind select{font-size:0.95rem;padding:0.2rem 0.3rem;max-width:100%;
min-height:2rem;border:1px solid #888;border-radius:4px;background:inherit;color:inherit}
.skipflow-explorer .vega-bind-radio{display:inline-flex;flex-wrap:wrap;gap:0.1rem 0.6rem}
.skipflow-explorer .vega-bind-radio label{gap:0.25rem;font-weight:normal}
.skipflow-explorer .vega-bind-radio input{width:1.05rem;height:1.05rem;margin:0}
.skipflow-explorer .skipflow-explorer-note{font-size:0.85rem;opacity:0.8;margin:0.25rem 0 0}
.skipflow-explorer img{max-width:100%;height:auto}
</style>"""

# The loader is the same for every explorer on a page; it loads Vega once. Where RequireJS is on the page
# (pages with ipywidgets), the UMD builds would register as anonymous AMD modules if loaded with plain
# <script> tags, so they are loaded through RequireJS (in a context of their own) instead.
LOADER = """(function () {
  var root = document.getElementById("%(id)s");
  var FILES = %(files)s, CDN = %(cdn)s;
  function fallback(why) {
    if (root.dataset.state === "fallback") return;
    root.dataset.state = "fallback";
    var ns = root.querySelector("noscript"), box = document.createElement("div");
    box.innerHTML = ns ? ns.textContent : "";
    var note = document.createElement("p");
    note.className = "skipflow-explorer-note";
    note.textContent = "The interactive figure could not load (" + why + "); this is its default setting.";
    box.appendChild(note);
    root.querySelector(".skipflow-explorer-view").replaceWith(box);
  }
  function script(src) {
    return new Promise(function (ok, fail) {
      var s = document.createElement("script");
      s.src = src; s.async = false;
      s.onload = ok; s.onerror = function () { fail(new Error("cannot load " + src)); };
      document.head.appendChild(s);
    });
  }
  function vegaEmbed() {
    if (window.__skipflowVegaEmbed) return window.__skipflowVegaEmbed;
    var base = window.skipflowVendor, url = {};
    Object.keys(FILES).forEach(function (p) {
      url[p] = base ? base + p + "/" + FILES[p].split("/").pop() : CDN[p];
    });
    var amd = typeof window.define === "function" && window.define.amd
      && typeof window.requirejs === "function";
    var loading;
    if (window.vegaEmbed) {
      loading = Promise.resolve(window.vegaEmbed);
    } else if (amd) {
      var paths = {};
      Object.keys(url).forEach(function (p) { paths[p] = url[p].replace(/\\.js$/, ""); });
      var req = window.requirejs.config({context: "skipflow-explorers", paths: paths});
      loading = new Promise(function (ok, fail) { req(["vega-embed"], ok, fail); });
    } else {
      loading = script(url["vega"]).then(function () { return script(url["vega-lite"]); })
        .then(function () { return script(url["vega-embed"]); })
        .then(function () { return window.vegaEmbed; });
    }
    window.__skipflowVegaEmbed = loading;
    return loading;
  }
  function start() {
    var spec = JSON.parse(root.querySelector("script.skipflow-explorer-spec").textContent);
    vegaEmbed().then(function (embed) {
      return embed(root.querySelector(".skipflow-explorer-view"), spec, {actions: false, renderer: "canvas"});
    }).then(function (result) {
      root.skipflowView = result.view;
      root.dataset.state = "ready";
    }).catch(function (err) { fallback(err && err.message ? err.message : String(err)); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();"""


def explorer_snippet(spec: Mapping[str, Any], fallback_png: bytes, alt: str, name: str = "explorer") -> str:
    """The self-contained HTML of an explorer: Vega-Lite ``spec``, its loader, and the fallback picture."""
    if not isinstance(spec, Mapping) or "params" not in spec:
        raise TypeError("`spec` must be a Vega-Lite spec (a dict with bound `params`).")
    if not isinstance(fallback_png, bytes) or not fallback_png.startswith(b"\x89PNG"):
        raise TypeError("`fallback_png` must be the bytes of a PNG image.")
    uid = f"skipflow-explorer-{name}-{uuid.uuid4().hex[:8]}"
    files = {p: VEGA_FILES[p] for p in VEGA_VERSIONS}
    cdn = {p: f"{CDN}{p}@{v}/{VEGA_FILES[p]}" for p, v in VEGA_VERSIONS.items()}
    # "</" cannot end the JSON's <script> element early once escaped; the browser's JSON.parse undoes it.
    spec_json = json.dumps(spec, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
    image = base64.b64encode(fallback_png).decode("ascii")
    loader = LOADER % {"id": uid, "files": json.dumps(files), "cdn": json.dumps(cdn)}
    return (
        f'<div class="skipflow-explorer" id="{uid}" data-explorer="{html.escape(name)}" data-state="loading">'
        f"{STYLE}"
        f'<div class="skipflow-explorer-view"></div>'
        f'<noscript><img src="data:image/png;base64,{image}" alt="{html.escape(alt)}"></noscript>'
        f'<script type="application/json" class="skipflow-explorer-spec">{spec_json}</script>'
        f"<script>{loader}</script>"
        "</div>"
    )
