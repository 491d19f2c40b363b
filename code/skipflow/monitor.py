"""A per-layer ‖∂𝓛/∂W‖ / ‖W‖ monitor to watch during training.

The ratio of a layer's gradient norm to its weight norm, times the learning rate, is the relative change
one plain SGD step makes to that layer (with momentum, a step is a running sum of past gradients, so the ratio
measures the push of the current gradient rather than the step). It is the cheapest health check there is:

- a ratio many orders of magnitude below the others means the layer barely learns (vanishing gradients,
  a dead plain network);
- a ratio near or above 1 / lr means one step rewrites the layer (exploding gradients).

It cannot see everything: a network whose layers all move at a healthy, *similar* rate can still fail to
learn (chapter 4 shows a post-activation network that does exactly that). Read it next to the loss.

Use it as ``on_step`` in :func:`skipflow.train.train`::

    monitor = GradWeightMonitor()
    history = skipflow.train.train(model, data, on_step=monitor)
    monitor.plot()
"""

from __future__ import annotations

import math

import torch
from torch import nn

from skipflow._validate import check_float, check_int
from skipflow.probes import grad_to_weight_ratios


class GradWeightMonitor:
    """Record ‖∂𝓛/∂W_l‖ / ‖W_l‖ for every weight layer every ``every`` steps.

    Call it as ``monitor(step, model)`` after ``loss.backward()`` (``skipflow.train.train`` does this when
    passed as ``on_step``). ``monitor.ratios`` is a tensor of shape (recorded steps, layers).

    Args:
        every: record every so many steps (1 records all).
        low: a layer whose median ratio is below this is flagged as "barely learning".
        high: a layer whose median ratio is above this is flagged as "moving too fast".
    """

    def __init__(self, every: int = 1, low: float = 1e-5, high: float = 1.0) -> None:
        self.every = check_int("every", every, minimum=1)
        self.low = check_float("low", low, minimum=0.0, strict_min=True)
        self.high = check_float("high", high, minimum=0.0, strict_min=True)
        if self.low >= self.high:
            raise ValueError(f"`low` ({low}) must be below `high` ({high}).")
        self.steps: list[int] = []
        self._rows: list[torch.Tensor] = []

    def __call__(self, step: int, model: nn.Module) -> None:
        if step % self.every:
            return
        self.steps.append(int(step))
        self._rows.append(grad_to_weight_ratios(model).cpu())

    @property
    def ratios(self) -> torch.Tensor:
        """The recorded ratios, shape (recorded steps, weight layers); empty before the first record."""
        return torch.stack(self._rows) if self._rows else torch.empty(0, 0)

    def summary(self) -> dict[str, object]:
        """Per-layer median ratios over the run, their spread across layers, and the layers flagged.

        Returns a dict with ``median`` (tensor, one per layer), ``spread`` (the decades between the
        largest and smallest layer median), ``low_layers`` and ``high_layers`` (indices, 0 = first
        layer) and ``flagged`` (True if any layer is flagged).
        """
        if not self._rows:
            raise ValueError("The monitor has recorded nothing yet: pass it as `on_step` to train() first.")
        median = self.ratios.median(dim=0).values
        finite = median[torch.isfinite(median) & (median > 0)]
        spread = math.log10(float(finite.max()) / float(finite.min())) if len(finite) else math.inf
        low = [i for i, v in enumerate(median.tolist()) if v < self.low]
        high = [i for i, v in enumerate(median.tolist()) if not v <= self.high]
        return {
            "median": median,
            "spread": spread,
            "low_layers": low,
            "high_layers": high,
            "flagged": bool(low or high),
        }

    def report(self) -> str:
        """One line a human can read: what, if anything, the monitor flags."""
        s = self.summary()
        n = len(s["median"])
        parts = [f"{n} layers, median ratios span {s['spread']:.1f} decades"]
        if s["low_layers"]:
            parts.append(f"{len(s['low_layers'])} barely learn (ratio < {self.low:g})")
        if s["high_layers"]:
            parts.append(f"{len(s['high_layers'])} move too fast (ratio > {self.high:g})")
        if not s["flagged"]:
            parts.append("nothing flagged")
        return "; ".join(parts)

    def _log_ratios(self):
        if not self._rows:
            raise ValueError("The monitor has recorded nothing yet: pass it as `on_step` to train() first.")
        return self.ratios.clamp_min(1e-30).log10().T.numpy()

    def _draw(self, ax, title: str, vmin: float | None = None, vmax: float | None = None):
        values = self._log_ratios()
        extent = (self.steps[0] - 0.5, self.steps[-1] + 0.5, 0.5, values.shape[0] + 0.5)
        image = ax.imshow(
            values,
            aspect="auto",
            origin="lower",
            extent=extent,
            cmap="viridis",
            interpolation="nearest",
            vmin=vmin,
            vmax=vmax,
        )
        ax.set(title=title, xlabel="training step", ylabel="weight layer\n(1 = input side)")
        ax.grid(False)
        return image

    def _mark_thresholds(self, bar, low: float, high: float) -> None:
        """Draw the flag thresholds on a colour bar whose scale runs from ``low`` to ``high`` (log10).

        Each threshold in that range is a black line across the bar (``low`` dashed, ``high`` dotted) and
        takes its name among the bar's tick labels, e.g. "low (−5)"; a tick closer to it than a twentieth of
        the scale is dropped, so that the labels do not overlap.
        """
        labels = {float(t): f"{t:g}".replace("-", "−") for t in bar.get_ticks() if low <= t <= high}
        for name, threshold, style in (("low", self.low, "--"), ("high", self.high, ":")):
            level = math.log10(threshold)
            if low <= level <= high:
                bar.ax.axhline(level, color="black", ls=style, lw=1.5)
                labels = {t: text for t, text in labels.items() if abs(t - level) > (high - low) / 20}
                labels[level] = f"{name} ({level:g})".replace("-", "−")
        ticks = sorted(labels)
        bar.set_ticks(ticks, labels=[labels[t] for t in ticks])

    def plot(
        self,
        ax=None,
        title: str = r"$\Vert\partial\mathcal{L}/\partial W\Vert\,/\,\Vert W\Vert$ per layer during training",
    ):
        """A heat map: x = training step, y = layer (1 = first), colour = log10 of the ratio.

        Flag thresholds ``low`` and ``high`` are marked on the colour bar.
        """
        import matplotlib.pyplot as plt

        values = self._log_ratios()
        ax = ax or plt.subplots(figsize=(7.0, 3.6))[1]
        image = self._draw(ax, title)
        bar = ax.figure.colorbar(image, ax=ax)
        bar.set_label(r"$\log_{10}$ of the ratio")
        self._mark_thresholds(bar, float(values.min()), float(values.max()))
        return ax


def plot_monitors(monitors: dict[str, GradWeightMonitor], width: float = 8.0, panel_height: float = 2.1):
    """Several monitors' heat maps stacked in one column, on ONE colour scale with one colour bar.

    A shared scale is what makes the panels comparable: the same colour is the same ratio in every panel.
    The colour bar marks the first monitor's ``low`` (dashed) and ``high`` (dotted) thresholds. Returns the
    figure.
    """
    import matplotlib.pyplot as plt

    if not isinstance(monitors, dict) or not monitors:
        raise ValueError("`monitors` must be a non-empty dict {title: GradWeightMonitor}.")
    for title, monitor in monitors.items():
        if not isinstance(monitor, GradWeightMonitor):
            raise TypeError(
                f"`monitors[{title!r}]` must be a GradWeightMonitor, got {type(monitor).__name__}."
            )
    values = [m._log_ratios() for m in monitors.values()]
    low, high = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
    fig, axes = plt.subplots(
        len(monitors), 1, figsize=(width, panel_height * len(monitors)), sharex=True, layout="constrained"
    )
    axes = [axes] if len(monitors) == 1 else list(axes)
    for ax, (title, monitor) in zip(axes, monitors.items(), strict=True):
        image = monitor._draw(ax, title, vmin=low, vmax=high)
    for ax in axes[:-1]:
        ax.set_xlabel("")
    bar = fig.colorbar(image, ax=axes, aspect=30)
    bar.set_label(r"$\log_{10}$ of the ratio (one scale for all panels)")
    next(iter(monitors.values()))._mark_thresholds(bar, low, high)
    return fig


__all__ = ["GradWeightMonitor", "plot_monitors"]
