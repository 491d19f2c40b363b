"""Shattered gradients (Balduzzi et al. 2017): how the input gradient of a deep net loses its structure.

Feed a one-dimensional input x through a network with a scalar output y, sweep x along a line, and record
dy/dx at every point of the sweep. For a shallow ReLU network dy/dx is piecewise constant with few jumps, so
the gradients at neighbouring points are almost the same. As a plain network gets deeper the jumps multiply
and dy/dx starts to look like white noise: the gradient at one point says nothing about the gradient a step
away. Balduzzi et al. show that the correlation between nearby gradients decays exponentially with depth in
plain feedforward networks and much more slowly in residual ones.

:func:`shattering_study` measures that correlation for the chapter's own plain and residual MLPs
(:func:`skipflow.degradation.degradation_model`: Kaiming init, BatchNorm, pre-activation blocks), at several
depths and seeds. BatchNorm normally couples the examples of a batch; here each BatchNorm layer uses the mean
and variance of the sweep itself, computed once and then frozen (:func:`freeze_batchnorm`), so that each
output depends on its own input only and dy/dx is an ordinary derivative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from skipflow import runtime
from skipflow._validate import check_int
from skipflow.degradation import KINDS, degradation_model

__all__ = [
    "ShatteringResult",
    "freeze_batchnorm",
    "input_gradients",
    "neighbour_correlation",
    "shattering_study",
    "sweep",
]


def sweep(n_points: int = 256, low: float = -2.0, high: float = 2.0) -> torch.Tensor:
    """``n_points`` evenly spaced scalar inputs from ``low`` to ``high``, shape (n_points, 1), float64."""
    check_int("n_points", n_points, minimum=3)
    if not high > low:
        raise ValueError(f"`high` must be larger than `low`, got low={low}, high={high}.")
    return torch.linspace(low, high, n_points, dtype=torch.float64).unsqueeze(1)


def freeze_batchnorm(net: nn.Module, x: torch.Tensor) -> nn.Module:
    """Set every BatchNorm layer's running statistics to the batch statistics of ``x``, then switch to eval.

    After this, ``net`` normalizes with fixed numbers, so each output depends only on its own input, and on
    ``x`` itself it computes exactly what the training-mode forward pass computes. A net without BatchNorm is
    only switched to eval mode. Returns ``net``.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    counts: dict[nn.Module, int] = {}

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        counts[module] = inputs[0].numel() // inputs[0].shape[1]  # values per channel in the batch

    handles = [m.register_forward_pre_hook(count) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: after one batch, exactly that batch's statistics
    net.train()
    try:
        with torch.no_grad():
            net(x)
    finally:
        for handle in handles:
            handle.remove()
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum
    for m in norms:  # BatchNorm stores the unbiased variance but normalizes a batch by the biased one
        n = counts[m]
        m.running_var.mul_((n - 1) / n)
    return net.eval()


def input_gradients(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """dy/dx at every row of ``x`` (shape (n, 1)) for a net with one input and one output; shape (n,).

    The net must treat the rows independently (no BatchNorm in training mode): then the gradient of the
    summed outputs with respect to row i is the derivative of output i alone.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != 1:
        raise ValueError("`x` must have shape (n_points, 1): one scalar input per row (see sweep()).")
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in net.modules()):
        raise ValueError("BatchNorm in training mode couples the rows; call freeze_batchnorm first.")
    xs = x.detach().clone().requires_grad_(True)
    out = net(xs)
    if out.shape != (x.shape[0], 1):
        raise ValueError(f"the net must map (n, 1) to (n, 1); it returned shape {tuple(out.shape)}.")
    (grad,) = torch.autograd.grad(out.sum(), xs)
    return grad.squeeze(1).detach()


def neighbour_correlation(grads: torch.Tensor, lag: int = 1) -> float:
    """The correlation between the gradients at sweep points ``lag`` steps apart (Pearson, over the sweep).

    Near 1: neighbouring gradients are nearly the same. Near 0: they are unrelated, like white noise.
    """
    if not isinstance(grads, torch.Tensor) or grads.dim() != 1:
        raise ValueError("`grads` must be a 1-D tensor of gradients along a sweep.")
    check_int("lag", lag, minimum=1)
    if grads.numel() < lag + 3:
        raise ValueError(f"a sweep of {grads.numel()} points is too short for lag {lag}.")
    a, b = grads[:-lag].double(), grads[lag:].double()
    a, b = a - a.mean(), b - b.mean()
    denom = (a.norm() * b.norm()).item()
    if denom == 0.0:
        raise ValueError("the gradient is constant along the sweep, so its correlation is undefined.")
    return float((a @ b).item() / denom)


@dataclass(frozen=True)
class ShatteringResult:
    """What :func:`shattering_study` measured.

    - ``depths``: the depths, in Linear layers.
    - ``correlation[kind]``: tensor (seeds, depths) of :func:`neighbour_correlation` at lag 1.
    - ``gradients[kind]``: tensor (depths, n_points) of dy/dx for the first seed, for plotting.
    - ``x``: the sweep, shape (n_points,).
    """

    depths: list[int]
    correlation: dict[str, torch.Tensor]
    gradients: dict[str, torch.Tensor]
    x: torch.Tensor


def shattering_study(
    depths: Sequence[int] = (4, 8, 14, 20, 32, 56), n_seeds: int = 4, n_points: int = 256, width: int = 64
) -> ShatteringResult:
    """dy/dx along a sweep of x ∈ [−2, 2] for the chapter's plain and residual MLPs, at each depth and seed.

    Seed ``s`` builds both kinds of net; each net has one input and one output and runs in float64, with its
    BatchNorm statistics frozen at those of the sweep.
    """
    depths = list(depths)
    if not depths:
        raise ValueError("`depths` must list at least one depth, e.g. (4, 20, 56).")
    for depth in depths:
        check_int("depths[i]", depth, minimum=4)
        if depth % 2:
            raise ValueError(f"`depths` must be even (two layers per residual block), got {depth}.")
    check_int("n_seeds", n_seeds, minimum=1)
    x = sweep(n_points)
    correlation: dict[str, torch.Tensor] = {}
    gradients: dict[str, torch.Tensor] = {}
    for kind in KINDS:
        table = torch.empty(n_seeds, len(depths), dtype=torch.float64)
        first = []
        for j, depth in enumerate(depths):
            for seed in range(n_seeds):
                runtime.manual_seed(seed)
                net = degradation_model(kind, depth, in_features=1, n_classes=1, width=width).double()
                grads = input_gradients(freeze_batchnorm(net, x), x)
                table[seed, j] = neighbour_correlation(grads)
                if seed == 0:
                    first.append(grads)
        correlation[kind] = table
        gradients[kind] = torch.stack(first)
    return ShatteringResult(depths, correlation, gradients, x.squeeze(1))
