"""Keeping an unnormalized residual stack stable: the fixes for forward variance growth.

Without normalization, a residual block h_l = h_{l-1} + F_l(h_{l-1}) whose branch preserves variance adds
a second copy of the variance at every block, so Var(h_l) ≈ 2 Var(h_{l-1}) and the stream grows like 2^L.
Each fix here shrinks the branch at initialization:

- ``"sqrt_depth"``: multiply every branch by 1/√L, so the variance grows like (1 + 1/L)^L ≤ e;
- ``"rezero"``: a learnable scalar α per branch, initialized to 0 (ReZero, Bachlechner et al. 2021;
  SkipInit, De & Smith 2020), so each block starts as the identity;
- ``"fixup"``: Fixup-style init (Zhang et al. 2019): zero the classifier and the last layer of each branch,
  and scale the other branch layers by L^(-1/(2m-2)) for m layers per branch;
- ``"batchnorm"``: the normalized baseline.

:func:`build` makes a residual MLP with any of them (``"none"`` is the unprotected stack).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from skipflow._validate import check_choice, check_float, check_int
from skipflow.blocks import ResidualBlock
from skipflow.models import Net, residual_mlp

FIXES = ("none", "batchnorm", "sqrt_depth", "rezero", "fixup")


def _residual_blocks(net: nn.Module) -> list[ResidualBlock]:
    if not isinstance(net, nn.Module):
        raise TypeError(f"`net` must be a torch.nn.Module, got {type(net).__name__}.")
    blocks = [m for m in net.modules() if isinstance(m, ResidualBlock)]
    if not blocks:
        raise ValueError("`net` has no skipflow.blocks.ResidualBlock to act on; build it with residual_mlp.")
    return blocks


def branch_weight_layers(block: ResidualBlock) -> list[nn.Module]:
    """The Linear/Conv2d layers inside a block's residual branch, in forward order."""
    return [m for m in block.branch if isinstance(m, nn.Linear | nn.Conv2d)]


@torch.no_grad()
def scale_branches(net: nn.Module, scale: float) -> nn.Module:
    """Set every block's branch scale α to ``scale`` in place (e.g. 1/√L) and return ``net``."""
    check_float("scale", scale)
    for block in _residual_blocks(net):
        block.alpha.fill_(scale)
    return net


@torch.no_grad()
def fixup_init(net: nn.Module, zero_head: bool = True) -> nn.Module:
    """Fixup-style init in place: zero the classifier and each branch's last layer, rescale the rest.

    Zhang et al. (2019, Section 3) give three rules, of which this keeps the first two: (1) initialize the
    classification layer and the last layer of each residual branch to 0 (``zero_head=False`` keeps the
    head's default init); (2) multiply the other weight layers of each of the L branches, with m weight
    layers each, by L^(-1/(2m-2)). Biases in the branch are zeroed. With the last branch layer at zero every
    block starts as the identity, so the rescaling does not act on the variance at initialization: it
    bounds how much one SGD step can change the output (Fixup's argument). Full Fixup's rule 3 (scalar
    biases before each layer and a scalar multiplier per branch) is left out.
    """
    blocks = _residual_blocks(net)
    n_blocks = len(blocks)
    for block in blocks:
        layers = branch_weight_layers(block)
        m = len(layers)
        if m < 2:
            raise ValueError("Fixup needs at least 2 weight layers per branch (`layers_per_block` >= 2).")
        factor = n_blocks ** (-1.0 / (2 * m - 2))
        for layer in layers[:-1]:
            layer.weight.mul_(factor)
        nn.init.zeros_(layers[-1].weight)
        for layer in layers:
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    head = getattr(net, "head", None)
    if zero_head and isinstance(head, nn.Linear | nn.Conv2d):
        nn.init.zeros_(head.weight)
        if head.bias is not None:
            nn.init.zeros_(head.bias)
    return net


def build(
    fix: str,
    n_blocks: int,
    in_features: int = 64,
    out_features: int = 10,
    width: int = 64,
) -> Net:
    """A pre-activation residual MLP with ``n_blocks`` two-layer blocks, Kaiming init, and one ``fix``.

    ``fix`` is one of ``FIXES``. Every variant except ``"batchnorm"`` has no normalization layer at all.
    Seed the generator before calling for a reproducible init.
    """
    check_choice("fix", fix, FIXES)
    check_int("n_blocks", n_blocks, minimum=1)
    norm = "batch" if fix == "batchnorm" else None
    rezero = fix == "rezero"
    net = residual_mlp(
        in_features,
        out_features,
        depth=2 + 2 * n_blocks,
        width=width,
        norm=norm,
        init="kaiming",
        alpha=0.0 if rezero else 1.0,
        learnable_alpha=rezero,
    )
    if fix == "sqrt_depth":
        scale_branches(net, 1.0 / math.sqrt(n_blocks))
    elif fix == "fixup":
        fixup_init(net)
    return net


@torch.no_grad()
def stream_variances(net: Net, x: torch.Tensor) -> torch.Tensor:
    """Var(h_l) for h_0 (the stem output) and each block output h_1 … h_L, on the batch ``x``.

    The variance is over all entries of the batch tensor. The pass runs in training mode, as at the first
    step of training (BatchNorm normalizes with the statistics of ``x``); afterwards the buffers and the
    train/eval mode of every module of ``net`` are put back, so its running statistics are not touched.
    """
    if not (hasattr(net, "stem") and hasattr(net, "blocks")):
        raise TypeError("`net` must be a skipflow.models.Net (it needs `.stem` and `.blocks`).")
    # Faster than a deep copy of the whole net, with the same effect: keep the buffers (BatchNorm's running
    # statistics) and every module's mode, run in training mode, then put both back.
    buffers = [(b, b.clone()) for b in net.buffers()]
    modes = [(m, m.training) for m in net.modules()]
    net.train()
    try:
        h = net.stem(x)
        out = [h.var()]
        for block in net.blocks:
            h = block(h)
            out.append(h.var())
    finally:
        for b, value in buffers:
            b.copy_(value)
        for m, mode in modes:
            m.training = mode
    return torch.stack(out)


def mean_squared_singular_value(net: nn.Module, x: torch.Tensor) -> float:
    """The mean of σ_i² of the input-output Jacobian at each row of ``x``, averaged over the rows.

    Equal to ‖J‖_F² / min(in, out): how much the net amplifies a small input perturbation, on average.
    Evaluated in eval mode (mode restored afterwards).
    """
    from skipflow.probes import jacobian_singular_values

    if x.dim() != 2:
        raise ValueError("`x` must be 2-D (a few examples as rows).")
    was_training = net.training
    net.eval()
    values = [jacobian_singular_values(net, row).pow(2).mean() for row in x]
    net.train(was_training)
    return float(torch.stack(values).mean())
