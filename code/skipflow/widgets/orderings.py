"""Chapter 4's ordering/depth explorer: how the gradient on the residual stream depends on the ordering.

:func:`ordering_gradients` measures ‖g_l‖ = ‖∂𝓛/∂h_l‖ at every block output of an
:func:`skipflow.orderings.ordered_net` (a few seeds, optionally after a short training run),
:func:`plot_ordering_gradients` draws it next to the full pre-activation reference, and
:func:`ordering_explorer` wires both to ipywidgets controls. :func:`ordering_training` also returns
the training curve of the same runs (the explorers' second face).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch

from skipflow import runtime
from skipflow._validate import check_choice, check_int
from skipflow.data import load_digits
from skipflow.orderings import ORDERING_LABELS, ORDERINGS, ordered_net
from skipflow.plots import ORDERING_COLORS, plot_band
from skipflow.probes import stream_grad_norms
from skipflow.runtime import device
from skipflow.train import train

__all__ = [
    "ORDERING_DEFAULTS",
    "OrderingTraining",
    "ordering_explorer",
    "ordering_gradients",
    "ordering_training",
    "plot_ordering_gradients",
]

ORDERING_DEFAULTS = {"ordering": "original", "n_blocks": 50, "train_steps": 0}


def ordering_gradients(
    ordering: str = "original",
    n_blocks: int = 50,
    train_steps: int = 0,
    n_seeds: int = 3,
    width: int = 32,
    lr: float = 0.1,
) -> torch.Tensor:
    """‖g_l‖ for h_0 … h_L of a residual MLP on digits, one row per seed (seeds 0, 1, …).

    The network is ``ordered_net(64, 10, n_blocks, width, ordering)``. With ``train_steps > 0`` it is
    first trained for that many SGD-momentum steps at learning rate ``lr``. The norms are measured on the
    first 128 training images, in training mode (BatchNorm uses the batch statistics, as in training).
    """
    return ordering_training(ordering, n_blocks, train_steps, n_seeds, width, lr).grads


@dataclass(frozen=True)
class OrderingTraining:
    """What :func:`ordering_training` measured, one row per seed."""

    losses: torch.Tensor  #: (seeds, train_steps): the minibatch loss of every step (NaN after a divergence)
    grads: torch.Tensor  #: (seeds, n_blocks + 1): ‖g_l‖ after training, as :func:`ordering_gradients`


def ordering_training(
    ordering: str = "original",
    n_blocks: int = 50,
    train_steps: int = 20,
    n_seeds: int = 1,
    width: int = 32,
    lr: float = 0.1,
) -> OrderingTraining:
    """Train ``ordered_net(64, 10, n_blocks, width, ordering)`` on digits for ``train_steps`` SGD-momentum
    steps (none if 0), once per seed 0, 1, …; return each run's loss curve and ‖g_l‖ at its end.

    The norms are measured on the first 128 training images, in training mode (BatchNorm uses the batch
    statistics, as in training). :func:`ordering_gradients` returns the same norms.
    """
    check_choice("ordering", ordering, ORDERINGS)
    check_int("n_blocks", n_blocks, minimum=1)
    check_int("train_steps", train_steps, minimum=0)
    check_int("n_seeds", n_seeds, minimum=1)
    data = _digits().to(device())
    x, y = data.x_train[:128], data.y_train[:128]
    losses, grads = [], []
    for seed in range(n_seeds):
        runtime.manual_seed(seed)
        net = ordered_net(64, 10, n_blocks, width, ordering).to(device())
        curve = [math.nan] * train_steps  # NaN after a divergence, where training stops
        if train_steps:
            history = train(net, data, steps=train_steps, lr=lr, seed=seed, progress=False, final_eval=False)
            curve[: len(history.loss)] = history.loss
        net.train()
        losses.append(torch.tensor(curve))
        grads.append(stream_grad_norms(net, x, y).cpu())
    return OrderingTraining(torch.stack(losses), torch.stack(grads))


@functools.lru_cache(maxsize=1)
def _digits():
    """sklearn's digits, loaded once per process (the explorers measure many settings; nothing writes
    into the tensors: training reads minibatches of them)."""
    return load_digits()


def plot_ordering_gradients(
    ordering: str = "original",
    n_blocks: int = 50,
    train_steps: int = 0,
    n_seeds: int = 3,
    ax: plt.Axes | None = None,
    reference: bool = True,
    precomputed: Mapping[str, torch.Tensor] | None = None,
) -> plt.Axes:
    """Draw :func:`ordering_gradients` (median and min-max band over seeds) on a log scale.

    With ``reference=True`` the full pre-activation net of the same depth is drawn too, for comparison.
    ``precomputed`` maps an ordering to runs already measured with the same settings (one row per seed),
    so a page can draw the figure without measuring twice.
    """
    ax = ax or plt.subplots()[1]
    names = [ordering]
    if reference and ordering != "full_preact":
        names.append("full_preact")
    for name in names:
        if precomputed is not None and name in precomputed:
            runs = precomputed[name]
            if runs.dim() != 2 or runs.shape[1] != n_blocks + 1:
                raise ValueError(
                    f"`precomputed[{name!r}]` must have one row per seed and n_blocks + 1 = {n_blocks + 1} "
                    f"columns, got shape {tuple(runs.shape)}."
                )
        else:
            runs = ordering_gradients(name, n_blocks, train_steps, n_seeds)
        color = ORDERING_COLORS[name]
        label = f"{ORDERING_LABELS[name]} ({len(runs)} seed{'s' if len(runs) > 1 else ''})"
        plot_band(runs, ax, label=label, color=color, log=True)
    when = "at initialization" if train_steps == 0 else f"after {train_steps} training steps"
    ax.set(
        title=f"Gradient on the residual stream, {n_blocks} blocks, {when}",
        xlabel="block output l (0 = stem output)",
        ylabel=r"$\Vert\partial\mathcal{L}/\partial h_l\Vert$",
    )
    ax.legend()
    return ax


def ordering_explorer(
    precomputed: Mapping[tuple[str, int, int], torch.Tensor] | None = None,
    n_seeds: int = 3,
):  # pragma: no cover - interactive
    """An ipywidgets explorer: pick an ordering, the number of blocks and a number of training steps.

    Every setting is measured with ``n_seeds`` seeds. ``precomputed`` maps ``(ordering, n_blocks,
    train_steps)`` to runs of :func:`ordering_gradients` already measured with as many seeds, which are
    drawn instead of measuring them again.
    """
    import ipywidgets as widgets
    from IPython.display import display

    ordering = widgets.Dropdown(
        options=[(ORDERING_LABELS[o], o) for o in ORDERINGS],
        value=ORDERING_DEFAULTS["ordering"],
        description="ordering",
    )
    n_blocks = widgets.IntSlider(
        value=ORDERING_DEFAULTS["n_blocks"], min=5, max=100, step=5, description="blocks"
    )
    train_steps = widgets.IntSlider(
        value=ORDERING_DEFAULTS["train_steps"], min=0, max=60, step=10, description="train steps"
    )
    out = widgets.Output()

    def redraw(_change: object = None) -> None:
        with out:
            out.clear_output(wait=True)
            n, steps = n_blocks.value, train_steps.value
            known = {o: r for (o, b, t), r in (precomputed or {}).items() if (b, t) == (n, steps)}
            if steps == 0:
                _fig, ax = plt.subplots()
                plot_ordering_gradients(ordering.value, n, 0, n_seeds, ax=ax, precomputed=known or None)
            else:  # the gradient after training, and the training curves of the same runs
                _fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
                names = dict.fromkeys([ordering.value, "full_preact"])
                runs = {o: ordering_training(o, n, steps, n_seeds=n_seeds) for o in names}
                plot_ordering_gradients(
                    ordering.value,
                    n,
                    steps,
                    n_seeds,
                    ax=ax,
                    precomputed={o: r.grads for o, r in runs.items()},
                )
                for o, r in runs.items():
                    color = ORDERING_COLORS[o]
                    steps_axis = range(1, steps + 1)
                    plot_band(
                        r.losses, ax_loss, label=ORDERING_LABELS[o], color=color, x=steps_axis, log=True
                    )
                ax_loss.set(title="Training loss of the same runs", xlabel="step", ylabel="minibatch loss")
                ax_loss.legend()
            plt.show()

    for control in (ordering, n_blocks, train_steps):
        control.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox([ordering, n_blocks, train_steps]), out])
    display(box)
    return box
