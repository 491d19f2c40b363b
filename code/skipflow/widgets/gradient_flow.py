"""Chapter 1's gradient-flow explorer: per-layer gradient norms at initialization, interactively.

:func:`measure_gradient_flow` does the measurement (a few seeds of one configuration),
:func:`plot_gradient_flow` draws it, and :func:`gradient_flow_explorer` wires both to ipywidgets
controls for depth, activation, initialization, normalization and a residual toggle. The chapter also
draws the static figure at the explorer's defaults, so the HTML book shows a real plot.
"""

from __future__ import annotations

import functools

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import MaxNLocator

from skipflow import runtime
from skipflow._validate import check_choice, check_int
from skipflow.blocks import NORMS
from skipflow.data import load_digits
from skipflow.models import INITS, plain_mlp, residual_mlp
from skipflow.plots import COLORS, plot_band
from skipflow.probes import layer_grad_norms
from skipflow.runtime import device

__all__ = ["GRADIENT_FLOW_DEFAULTS", "gradient_flow_explorer", "measure_gradient_flow", "plot_gradient_flow"]

FLOW_ACTIVATIONS = ("sigmoid", "tanh", "relu", "gelu")
GRADIENT_FLOW_DEFAULTS = {
    "depth": 20,
    "activation": "sigmoid",
    "init": "default",
    "norm": None,
    "residual": False,
}


def measure_gradient_flow(
    depth: int = 20,
    activation: str = "sigmoid",
    init: str = "default",
    norm: str | None = None,
    residual: bool = False,
    n_seeds: int = 3,
    width: int = 64,
    batch: int = 128,
) -> torch.Tensor:
    """‖∂𝓛/∂W_l‖ of every Linear layer at initialization, one row per seed (seeds 0, 1, …).

    The network is a plain MLP or, with ``residual=True``, a pre-activation residual MLP with two layers
    per block, with ``depth`` Linear layers either way (a residual depth must be even). It sees the first
    ``batch`` training images of sklearn's digits, with the cross-entropy loss, in float64 so that tiny
    norms do not underflow to zero.
    """
    check_int("depth", depth, minimum=2)
    check_choice("activation", activation, FLOW_ACTIVATIONS)
    check_choice("init", init, INITS)
    check_choice("norm", norm, NORMS)
    if not isinstance(residual, bool):
        raise TypeError(f"`residual` must be True or False, got {residual!r}.")
    check_int("n_seeds", n_seeds, minimum=1)
    if residual and depth % 2:
        raise ValueError(f"`depth`={depth}: a residual MLP with two layers per block needs an even depth.")
    check_int("batch", batch, minimum=1)
    dev = device()
    if dev.type == "mps":  # MPS has no float64
        dev = torch.device("cpu")
    x, y = _digits_batch(batch)
    x, y = x.to(dev), y.to(dev)
    rows = []
    for seed in range(n_seeds):
        runtime.manual_seed(seed)
        if residual:
            net = residual_mlp(64, 10, depth, width, activation, norm=norm, init=init, order="pre")
        else:
            net = plain_mlp(64, 10, depth, width, activation, norm=norm, init=init)
        net = net.to(dev, torch.float64).train()
        rows.append(layer_grad_norms(net, x, y).cpu())
    return torch.stack(rows)


@functools.lru_cache(maxsize=4)
def _digits_batch(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``batch`` training images (float64) and labels, loaded once per process.

    The explorers call :func:`measure_gradient_flow` for many settings; reading the dataset once keeps
    that fast. Nothing writes into these tensors (the networks only read their input).
    """
    data = load_digits()
    return data.x_train[:batch].to(torch.float64), data.y_train[:batch].clone()


NORM_NAMES = {None: "no norm", "batch": "BatchNorm", "layer": "LayerNorm"}


def _label(depth: int, activation: str, init: str, norm: str | None, residual: bool) -> str:
    kind = "residual" if residual else "plain"
    return f"{kind}-{depth}, {activation}, {init} init, {NORM_NAMES[norm]}"


def plot_gradient_flow(
    depth: int = 20,
    activation: str = "sigmoid",
    init: str = "default",
    norm: str | None = None,
    residual: bool = False,
    compare: bool = True,
    n_seeds: int = 3,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Plot :func:`measure_gradient_flow` (median over seeds, min–max band) on a log scale.

    With ``compare=True`` the other kind of network (residual if ``residual`` is False, and vice versa)
    is drawn too, at the nearest even depth for a residual net.
    """
    ax = ax or plt.subplots()[1]
    kinds = [residual, not residual] if compare else [residual]
    for res in kinds:
        d = depth + (depth % 2) if res else depth
        runs = measure_gradient_flow(d, activation, init, norm, res, n_seeds)
        color = COLORS["residual" if res else "plain"]
        label = f"{_label(d, activation, init, norm, res)} ({n_seeds} seeds)"
        plot_band(runs.clamp_min(1e-300), ax, label=label, color=color, x=np.arange(1, runs.shape[1] + 1))
    ax.set_yscale("log")
    ax.set(
        title="Per-layer weight-gradient norm at initialization",
        xlabel="Linear layer (1 = closest to the input)",
        ylabel=r"$\|\partial \mathcal{L} / \partial W_l\|$ (median, min–max band)",
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="best")
    return ax


def gradient_flow_explorer(**defaults: object) -> object:
    """An ipywidgets explorer around :func:`plot_gradient_flow`.

    Keyword arguments override ``GRADIENT_FLOW_DEFAULTS``; the explorer is displayed and returned.
    """
    import ipywidgets as widgets
    from IPython.display import display

    unknown = set(defaults) - set(GRADIENT_FLOW_DEFAULTS)
    if unknown:
        known = sorted(GRADIENT_FLOW_DEFAULTS)
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; the explorer knows {known}.")
    start = {**GRADIENT_FLOW_DEFAULTS, **defaults}
    controls = {
        "depth": widgets.IntSlider(value=start["depth"], min=4, max=60, step=2, description="depth"),
        "activation": widgets.Dropdown(
            options=FLOW_ACTIVATIONS, value=start["activation"], description="activation"
        ),
        "init": widgets.Dropdown(options=INITS, value=start["init"], description="init"),
        # String values: a None value leaves the dropdown blank in the saved widget state.
        "norm": widgets.Dropdown(
            options=[(NORM_NAMES[n], str(n)) for n in NORMS],
            value=str(start["norm"]),
            description="norm",
        ),
        "residual": widgets.Checkbox(value=start["residual"], description="residual"),
        "compare": widgets.Checkbox(value=True, description="also draw the other kind"),
    }

    def draw(**settings: object) -> None:
        settings["norm"] = None if settings["norm"] == "None" else settings["norm"]
        _fig, ax = plt.subplots(figsize=(7, 4))
        plot_gradient_flow(ax=ax, **settings)
        plt.show()

    out = widgets.interactive_output(draw, controls)
    ui = widgets.VBox(
        [
            widgets.HBox([controls["depth"], controls["activation"], controls["init"]]),
            widgets.HBox([controls["norm"], controls["residual"], controls["compare"]]),
            out,
        ]
    )
    display(ui)
    return ui
