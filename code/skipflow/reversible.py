"""Reversible residual blocks (RevNet, Gomez et al. 2017): training memory that does not grow with depth.

A reversible block splits its input into two halves and updates each with a residual branch of the other:

    y1 = x1 + F(x2),    y2 = x2 + G(y1).

Its input can be computed from its output, x2 = y2 − G(y1) and x1 = y1 − F(x2), so the backward pass does not
need the forward pass to save anything inside the stack: :class:`ReversibleStack` keeps only the stack's
output, and during the backward pass reconstructs each block's input from its output, recomputes the block's
local graph, and backpropagates through it. The price is one extra forward computation per block (as for
activation checkpointing with one block per segment) and a small floating-point reconstruction error.
"""

from __future__ import annotations

import torch
from torch import nn

from skipflow import runtime
from skipflow._validate import check_int

__all__ = ["ReversibleBlock", "ReversibleStack", "rev_mlp"]


def _branch(width: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))


class ReversibleBlock(nn.Module):
    """y1 = x1 + F(x2), y2 = x2 + G(y1) on the two halves of the feature dimension."""

    def __init__(self, half_width: int) -> None:
        super().__init__()
        check_int("half_width", half_width, minimum=1)
        self.f = _branch(half_width)
        self.g = _branch(half_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        y1 = x1 + self.f(x2)
        y2 = x2 + self.g(y1)
        return torch.cat([y1, y2], dim=-1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """The block's input, computed from its output."""
        y1, y2 = y.chunk(2, dim=-1)
        x2 = y2 - self.g(y1)
        x1 = y1 - self.f(x2)
        return torch.cat([x1, x2], dim=-1)


class _Reversible(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, blocks: nn.ModuleList, *params: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        with torch.no_grad():
            for block in blocks:
                x = block(x)
        ctx.blocks = blocks
        ctx.save_for_backward(x)  # the only activation kept, whatever the depth
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (y,) = ctx.saved_tensors
        params = [p for block in ctx.blocks for p in block.parameters()]
        grads = [torch.zeros_like(p) for p in params]
        offsets, start = [], 0
        for block in ctx.blocks:
            n = len(list(block.parameters()))
            offsets.append((start, start + n))
            start += n
        for block, (a, b) in zip(reversed(ctx.blocks), reversed(offsets), strict=True):
            with torch.no_grad():
                x = block.inverse(y)
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)
                out = block(x)
                block_params = params[a:b]
                found = torch.autograd.grad(out, [x, *block_params], grad)
            grad = found[0]
            for i, g in enumerate(found[1:]):
                grads[a + i] += g
            y = x.detach()
        return (grad, None, *grads)


class ReversibleStack(nn.Module):
    """Reversible blocks whose backward pass reconstructs the activations instead of saving them.

    With ``memory_saving=False`` the same blocks run through ordinary autograd (which saves every activation),
    so the two modes can be compared on the same weights.
    """

    def __init__(self, width: int, n_blocks: int, memory_saving: bool = True) -> None:
        super().__init__()
        check_int("width", width, minimum=2)
        check_int("n_blocks", n_blocks, minimum=1)
        if width % 2:
            raise ValueError(f"`width`={width} must be even: a reversible block splits it in two halves.")
        self.blocks = nn.ModuleList(ReversibleBlock(width // 2) for _ in range(n_blocks))
        self.memory_saving = memory_saving

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.memory_saving and torch.is_grad_enabled():
            return _Reversible.apply(x, self.blocks, *self.parameters())
        for block in self.blocks:
            x = block(x)
        return x


def rev_mlp(
    in_features: int,
    out_features: int,
    n_blocks: int,
    width: int = 64,
    memory_saving: bool = True,
    seed: int = 0,
) -> nn.Sequential:
    """A stem (Linear), a :class:`ReversibleStack` and a head (ReLU, Linear)."""
    runtime.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(in_features, width),
        ReversibleStack(width, n_blocks, memory_saving),
        nn.ReLU(),
        nn.Linear(width, out_features),
    )
