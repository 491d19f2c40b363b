"""The building blocks: activations, normalization, a plain layer and a residual block.

A residual block computes ``h = after(shortcut(h_prev) + alpha * branch(h_prev))``:

- ``branch`` is F, the residual branch (its layout depends on ``order``);
- ``shortcut`` is the identity here (chapters 2 and 4 add projections, gates and scalings);
- ``after`` is what follows the addition: the activation in the original ResNet order ("post"), nothing in
  the full pre-activation order ("pre") of He et al. (2016);
- ``alpha`` scales the branch (1 by default; 0 and learnable gives ReZero/SkipInit).

The same classes serve MLPs (``kind="linear"``) and small CNNs (``kind="conv"``, 3×3 convolutions that keep
the spatial size), so every chapter probes one family of models.
"""

from __future__ import annotations

import torch
from torch import nn

from skipflow._validate import check_choice, check_float, check_int

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}
NORMS = (None, "batch", "layer")
ORDERS = ("post", "pre")
KINDS = ("linear", "conv")


def make_activation(name: str) -> nn.Module:
    """An activation module by name: one of ``ACTIVATIONS``."""
    check_choice("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


def make_norm(name: str | None, width: int, kind: str = "linear") -> nn.Module:
    """A normalization layer for ``width`` features: ``None`` (identity), ``"batch"`` or ``"layer"``.

    For convolutions ``"layer"`` is ``GroupNorm`` with one group, which normalizes over channels and space.
    """
    check_choice("norm", name, NORMS)
    check_choice("kind", kind, KINDS)
    check_int("width", width, minimum=1)
    if name is None:
        return nn.Identity()
    if name == "batch":
        return nn.BatchNorm1d(width) if kind == "linear" else nn.BatchNorm2d(width)
    return nn.LayerNorm(width) if kind == "linear" else nn.GroupNorm(1, width)


def make_layer(width: int, kind: str = "linear", bias: bool = True) -> nn.Module:
    """A width-preserving weight layer: ``Linear(width, width)`` or a 3×3 ``Conv2d`` with padding 1."""
    check_int("width", width, minimum=1)
    check_choice("kind", kind, KINDS)
    if kind == "linear":
        return nn.Linear(width, width, bias=bias)
    return nn.Conv2d(width, width, kernel_size=3, padding=1, bias=bias)


class PlainLayer(nn.Module):
    """One layer of a plain network: weight layer → normalization → activation."""

    def __init__(
        self,
        width: int,
        activation: str = "relu",
        norm: str | None = None,
        kind: str = "linear",
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.layer = make_layer(width, kind, bias)
        self.norm = make_norm(norm, width, kind)
        self.act = make_activation(activation)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.layer(h)))


class ResidualBlock(nn.Module):
    """A residual block ``after(h + alpha * F(h))`` with an identity shortcut.

    Args:
        width: features (or channels) of the residual stream.
        activation: name of σ, see ``ACTIVATIONS``.
        norm: ``None``, ``"batch"`` or ``"layer"``.
        order: ``"post"`` is the original ResNet block, F = layer-norm-σ-layer-norm and σ after the sum;
            ``"pre"`` is full pre-activation, F = norm-σ-layer-norm-σ-layer and nothing after the sum.
        layers: weight layers in the branch (≥ 1).
        alpha: the branch scale. ``learnable_alpha=True`` makes it a trained parameter (ReZero uses
            ``alpha=0.0, learnable_alpha=True``).
        kind: ``"linear"`` for MLPs, ``"conv"`` for CNNs.
    """

    def __init__(
        self,
        width: int,
        activation: str = "relu",
        norm: str | None = "batch",
        order: str = "pre",
        layers: int = 2,
        alpha: float = 1.0,
        learnable_alpha: bool = False,
        kind: str = "linear",
        bias: bool = True,
    ) -> None:
        super().__init__()
        check_choice("order", order, ORDERS)
        check_int("layers", layers, minimum=1)
        check_float("alpha", alpha)
        self.order = order
        parts: list[nn.Module] = []
        for i in range(layers):
            if order == "pre":
                parts += [make_norm(norm, width, kind), make_activation(activation)]
                parts.append(make_layer(width, kind, bias))
            else:
                parts += [make_layer(width, kind, bias), make_norm(norm, width, kind)]
                if i < layers - 1:
                    parts.append(make_activation(activation))
        self.branch = nn.Sequential(*parts)
        self.shortcut = nn.Identity()
        self.after = make_activation(activation) if order == "post" else nn.Identity()
        alpha_tensor = torch.tensor(float(alpha))
        if learnable_alpha:
            self.alpha = nn.Parameter(alpha_tensor)
        else:
            self.register_buffer("alpha", alpha_tensor)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.after(self.shortcut(h) + self.alpha * self.branch(h))
