"""Channel pruning in a residual MLP, and why the residual stream makes it rigid.

Every block adds its branch output to the stream, h_l = h_{l-1} + F_l(h_{l-1}), so the branch's output
width must equal the stream's width. Removing output units from one branch alone breaks the addition. Two
prunes stay legal:

- ``"inner"``: remove hidden units *inside* each branch (between its two layers). The stream keeps its
  width and each branch becomes an hourglass: wide → narrow → wide.
- ``"stream"``: remove the same stream dimensions everywhere: the stem's outputs, every block's inputs and
  outputs, and the head's inputs.

Units are ranked by the L1 norm of their weights, the criterion of Li et al. (2017). The functions work on
the pre-activation MLPs of :func:`skipflow.models.residual_mlp` with two layers per block (norm ``None`` or
``"batch"``) and return pruned copies; the original is not modified.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from skipflow._validate import check_choice, check_int
from skipflow.blocks import ResidualBlock
from skipflow.models import count_parameters

STRATEGIES = ("inner", "stream")


def prune_linear(
    layer: nn.Linear, keep_out: torch.Tensor | None = None, keep_in: torch.Tensor | None = None
) -> nn.Linear:
    """A new Linear with only the output rows ``keep_out`` and input columns ``keep_in`` of ``layer``."""
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"`layer` must be an nn.Linear, got {type(layer).__name__}.")
    weight = layer.weight.detach()
    bias = layer.bias.detach() if layer.bias is not None else None
    if keep_out is not None:
        weight = weight[keep_out]
        bias = bias[keep_out] if bias is not None else None
    if keep_in is not None:
        weight = weight[:, keep_in]
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new.to(layer.weight.device)


def prune_norm(norm: nn.Module, keep: torch.Tensor) -> nn.Module:
    """A BatchNorm1d restricted to the features ``keep`` (an ``nn.Identity`` is returned unchanged)."""
    if isinstance(norm, nn.Identity):
        return norm
    if not isinstance(norm, nn.BatchNorm1d):
        raise TypeError(f"`norm` must be nn.BatchNorm1d or nn.Identity, got {type(norm).__name__}.")
    new = nn.BatchNorm1d(len(keep), eps=norm.eps, momentum=norm.momentum).to(norm.weight.device)
    with torch.no_grad():
        new.weight.copy_(norm.weight[keep])
        new.bias.copy_(norm.bias[keep])
        new.running_mean.copy_(norm.running_mean[keep])
        new.running_var.copy_(norm.running_var[keep])
    return new


def _check_net(net: nn.Module) -> None:
    blocks = getattr(net, "blocks", None)
    if blocks is None or not isinstance(net.stem, nn.Linear) or not isinstance(net.head, nn.Linear):
        raise TypeError("`net` must be a pre-activation residual MLP from skipflow.models.residual_mlp.")
    for i, block in enumerate(blocks):
        ok = isinstance(block, ResidualBlock) and block.order == "pre" and len(block.branch) == 6
        if not ok:
            raise TypeError(f"`net.blocks[{i}]` must be a pre-activation ResidualBlock with 2 layers.")


def _top(scores: torch.Tensor, n_keep: int) -> torch.Tensor:
    return scores.topk(n_keep).indices.sort().values


def prune(net: nn.Module, strategy: str, n_keep: int) -> nn.Module:
    """A pruned copy of ``net`` that keeps ``n_keep`` units per branch (``"inner"``) or stream dimensions.

    ``"inner"`` ranks each branch's hidden units by the L1 norm of the first layer's rows; ``"stream"``
    ranks stream dimensions by the L1 norm of every row that writes into them (the stem and each branch's
    last layer) and keeps the same dimensions in every block.
    """
    check_choice("strategy", strategy, STRATEGIES)
    check_int("n_keep", n_keep, minimum=1)
    _check_net(net)
    width = net.stem.out_features
    if n_keep > width:
        raise ValueError(f"`n_keep`={n_keep} is larger than the width {width}; nothing to prune.")
    net = copy.deepcopy(net)
    if strategy == "inner":
        for block in net.blocks:
            first, last = block.branch[2], block.branch[5]
            keep = _top(first.weight.detach().abs().sum(1), n_keep)
            block.branch[2] = prune_linear(first, keep_out=keep)
            block.branch[3] = prune_norm(block.branch[3], keep)
            block.branch[5] = prune_linear(last, keep_in=keep)
        return net
    scores = net.stem.weight.detach().abs().sum(1)
    for block in net.blocks:
        scores = scores + block.branch[5].weight.detach().abs().sum(1)
    keep = _top(scores, n_keep)
    net.stem = prune_linear(net.stem, keep_out=keep)
    for block in net.blocks:
        block.branch[0] = prune_norm(block.branch[0], keep)
        block.branch[2] = prune_linear(block.branch[2], keep_in=keep)
        block.branch[5] = prune_linear(block.branch[5], keep_out=keep)
    net.final[0] = prune_norm(net.final[0], keep)
    net.head = prune_linear(net.head, keep_in=keep)
    return net


def matching_inner_width(net: nn.Module, n_params: int) -> int:
    """The inner (branch) width whose ``"inner"`` prune has the parameter count closest to ``n_params``."""
    check_int("n_params", n_params, minimum=1)
    _check_net(net)
    width = net.stem.out_features
    counts = {k: count_parameters(prune(net, "inner", k)) for k in range(1, width + 1)}
    return min(counts, key=lambda k: abs(counts[k] - n_params))
