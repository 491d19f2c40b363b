"""Stochastic depth (Huang et al. 2016): drop whole residual branches at random while training.

In training, block l keeps its branch with probability p_l (its survival probability) and is the identity
otherwise: h_l = h_{l-1} + b_l · F_l(h_{l-1}) with b_l ~ Bernoulli(p_l). At test time every branch runs,
scaled by p_l, so each block outputs the *expected* training-time value: h_l = h_{l-1} + p_l · F_l(h_{l-1}).
Huang et al. use the linear decay rule p_l = 1 − (l/L)(1 − p_L), which keeps early blocks more often.
"""

from __future__ import annotations

import torch
from torch import nn

from skipflow._validate import check_float, check_int
from skipflow.blocks import ResidualBlock
from skipflow.data import Split
from skipflow.lesion import delete_blocks, single_deletion


def linear_decay(n_blocks: int, p_last: float = 0.5) -> list[float]:
    """Survival probabilities p_l = 1 − (l/L)(1 − p_last) for l = 1 … L (Huang et al.'s rule)."""
    check_int("n_blocks", n_blocks, minimum=1)
    check_float("p_last", p_last, minimum=0.0, maximum=1.0, strict_min=True)
    return [1.0 - (i / n_blocks) * (1.0 - p_last) for i in range(1, n_blocks + 1)]


def stochastic_depth_forward(
    h: torch.Tensor,
    branch: nn.Module,
    survival: float,
    training: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One block of stochastic depth with an identity shortcut: the rule in the module docstring."""
    if training:
        keep = torch.rand((), generator=generator).item() < survival
        return h + branch(h) if keep else h
    return h + survival * branch(h)


class StochasticDepthBlock(nn.Module):
    """Wrap a :class:`skipflow.blocks.ResidualBlock` so its branch survives with probability ``survival``.

    The drop is per minibatch (the whole branch for the whole batch), as in Huang et al. (2016).
    """

    def __init__(self, block: ResidualBlock, survival: float) -> None:
        super().__init__()
        if not isinstance(block, ResidualBlock):
            raise TypeError(f"`block` must be a skipflow.blocks.ResidualBlock, got {type(block).__name__}.")
        self.block = block
        self.survival = check_float("survival", survival, minimum=0.0, maximum=1.0, strict_min=True)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b = self.block

        def branch(v: torch.Tensor) -> torch.Tensor:
            return b.alpha * b.branch(v)

        return b.after(stochastic_depth_forward(b.shortcut(h), branch, self.survival, self.training))


def add_stochastic_depth(net: nn.Module, p_last: float = 0.5) -> nn.Module:
    """Wrap every block of a residual :class:`skipflow.models.Net` in place, with linear-decay survival."""
    if not hasattr(net, "blocks"):
        raise TypeError("`net` must be a skipflow.models.Net (it needs `.blocks`).")
    probs = linear_decay(len(net.blocks), p_last)
    for i, p in enumerate(probs):
        net.blocks[i] = StochasticDepthBlock(net.blocks[i], p)
    return net


def without_block(net: nn.Module, index: int) -> nn.Module:
    """A copy of ``net`` with block ``index`` deleted (its shortcut stays: the block becomes the identity)."""
    if not hasattr(net, "blocks"):
        raise TypeError("`net` must be a skipflow.models.Net (it needs `.blocks`).")
    check_int("index", index, minimum=0)
    if index >= len(net.blocks):
        raise ValueError(
            f"`index`={index} but the net has {len(net.blocks)} blocks (0 … {len(net.blocks) - 1})."
        )
    return delete_blocks(net, index)


def deletion_accuracies(net: nn.Module, data: Split) -> torch.Tensor:
    """Test accuracy after deleting each single block in turn (one entry per block).

    Each lesioned network runs ``net``'s own blocks (no copy; ``net`` is left as it was).
    """
    return single_deletion(net, data.x_test, data.y_test, share_weights=True)[1]
