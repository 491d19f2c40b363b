"""Folding a skip connection away for inference: RepVGG-style structural re-parameterization.

RepVGG (Ding et al., 2021) trains blocks with extra branches, among them an identity, and merges them into one
layer for inference, because a plain stack uses less memory and runs faster than a multi-branch one. The
simplest case shows the idea: a block whose branch is a single linear layer,

    h_l = σ(h_{l-1} + W h_{l-1} + b) = σ((I + W) h_{l-1} + b),

is exactly one Linear layer with weight I + W. :func:`rep_mlp` builds such a network for training and
:func:`fold` returns the plain network with the same function. (The full RepVGG block also folds a 1×1
branch and BatchNorm into a 3×3 convolution; the identity is the part that concerns skip connections.)
"""

from __future__ import annotations

import torch
from torch import nn

from skipflow import runtime
from skipflow._validate import check_int

__all__ = ["RepBlock", "fold", "rep_mlp"]


class RepBlock(nn.Module):
    """σ(h + Linear(h)): a residual block with a one-layer linear branch and the activation after the sum."""

    def __init__(self, width: int, inplace: bool = False) -> None:
        super().__init__()
        check_int("width", width, minimum=1)
        self.linear = nn.Linear(width, width)
        self.act = nn.ReLU(inplace=inplace)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.act(h + self.linear(h))


def rep_mlp(
    in_features: int, out_features: int, n_blocks: int, width: int = 64, inplace: bool = False, seed: int = 0
) -> nn.Sequential:
    """A stem, ``n_blocks`` :class:`RepBlock` s and a head; weights scaled so the stack stays stable."""
    check_int("n_blocks", n_blocks, minimum=1)
    runtime.manual_seed(seed)
    blocks = [RepBlock(width, inplace) for _ in range(n_blocks)]
    with torch.no_grad():
        for block in blocks:  # a small branch, so that I + W stays close to an isometry at any depth
            block.linear.weight.mul_(n_blocks**-0.5)
    return nn.Sequential(
        nn.Linear(in_features, width), nn.ReLU(inplace=inplace), *blocks, nn.Linear(width, out_features)
    )


@torch.no_grad()
def fold(model: nn.Sequential) -> nn.Sequential:
    """A copy of ``model`` in which every :class:`RepBlock` is replaced by Linear(I + W) → ReLU.

    The folded network computes the same function with one layer per block and no addition, so at inference
    nothing has to keep a block's input alive while its branch runs.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"`model` must be an nn.Sequential from rep_mlp, got {type(model).__name__}.")
    layers: list[nn.Module] = []
    for module in model:
        if isinstance(module, RepBlock):
            w = module.linear.weight
            merged = nn.Linear(w.shape[1], w.shape[0]).to(w.device, w.dtype)
            merged.weight.copy_(w + torch.eye(w.shape[0], device=w.device, dtype=w.dtype))
            merged.bias.copy_(module.linear.bias)
            layers += [merged, nn.ReLU(inplace=module.act.inplace)]
        else:
            layers.append(module)
    return nn.Sequential(*layers)
