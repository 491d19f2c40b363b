"""Plain and residual networks with one shared skeleton: ``stem → blocks → final → head``.

Keeping one skeleton means the probes, the lesion studies and the path analysis work on every model:
``net.blocks`` is an ``nn.ModuleList`` you can index, delete from, or reorder.

Depth counts weight layers, as in the ResNet paper's "ResNet-56": the stem layer, every layer inside the
blocks, and the head. A residual MLP of depth 56 with two layers per block therefore has 27 blocks.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from skipflow._validate import check_choice, check_int
from skipflow.blocks import (
    ACTIVATIONS,
    PlainLayer,
    ResidualBlock,
    make_activation,
    make_norm,
)

INITS = ("default", "xavier", "kaiming")


class Net(nn.Module):
    """A network ``head(final(blocks(stem(x))))``; ``blocks`` is an ``nn.ModuleList``."""

    def __init__(self, stem: nn.Module, blocks: list[nn.Module], final: nn.Module, head: nn.Module):
        super().__init__()
        self.stem = stem
        self.blocks = nn.ModuleList(blocks)
        self.final = final
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        return self.head(self.final(h))

    @property
    def n_blocks(self) -> int:
        """The number of blocks (plain layers or residual blocks) between stem and head."""
        return len(self.blocks)

    def first_blocks(self, n: int) -> Net:
        """The network made of this one's stem, its first ``n`` blocks, its final part and its head.

        The modules are shared, not copied: nets of several depths cut from one deep net differ only in the
        blocks a signal crosses, and cost nothing to build.
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"`n` must be an int, got {type(n).__name__}.")
        if not 0 <= n <= len(self.blocks):
            raise ValueError(f"`n` must be between 0 and the {len(self.blocks)} blocks of this net, got {n}.")
        return Net(self.stem, list(self.blocks[:n]), self.final, self.head)


def init_weights(model: nn.Module, init: str, activation: str = "relu") -> nn.Module:
    """Re-initialize every Linear/Conv2d weight of ``model`` in place and return it.

    - ``"default"``: leave PyTorch's default (uniform, bound 1/√fan_in, so Var(w) = 1/(3·fan_in)).
    - ``"xavier"``: Glorot & Bengio (2010), normal with Var(w) = 2/(fan_in + fan_out).
    - ``"kaiming"``: He et al. (2015b), normal with Var(w) = 2/fan_in (the ReLU gain).

    Biases are zeroed for ``"xavier"`` and ``"kaiming"``.
    """
    check_choice("init", init, INITS)
    check_choice("activation", activation, ACTIVATIONS)
    if init == "default":
        return model
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            if init == "xavier":
                nn.init.xavier_normal_(module.weight)
            else:
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def _check_common(in_features: int, out_features: int, width: int, depth: int) -> None:
    check_int("in_features", in_features, minimum=1)
    check_int("out_features", out_features, minimum=1)
    check_int("width", width, minimum=1)
    check_int("depth", depth, minimum=2)


def _stem_and_final(
    first: nn.Module, width: int, norm: str | None, activation: str, kind: str, order: str
) -> tuple[nn.Module, nn.Module]:
    """The stem and what sits before the head, for a block order.

    ``"post"`` (and plain nets): the stem is first layer → norm → σ, and nothing sits before the head.
    ``"pre"``: the stem is the bare first layer, and a final norm → σ sits before the head (He et al. 2016b
    need it: the last block's output is an un-normalized sum).
    """
    norm_act = [make_norm(norm, width, kind), make_activation(activation)]
    if order == "pre":
        return first, nn.Sequential(*norm_act)
    return nn.Sequential(first, *norm_act), nn.Identity()


def plain_mlp(
    in_features: int,
    out_features: int,
    depth: int,
    width: int = 64,
    activation: str = "relu",
    norm: str | None = None,
    init: str = "default",
    bias: bool = True,
) -> Net:
    """A plain MLP with ``depth`` Linear layers: (Linear → norm → σ) × (depth − 1), then a Linear head."""
    _check_common(in_features, out_features, width, depth)
    stem, final = _stem_and_final(
        nn.Linear(in_features, width, bias=bias), width, norm, activation, "linear", "post"
    )
    blocks = [PlainLayer(width, activation, norm, "linear", bias) for _ in range(depth - 2)]
    net = Net(stem, blocks, final, nn.Linear(width, out_features, bias=bias))
    return init_weights(net, init, activation)


def residual_mlp(
    in_features: int,
    out_features: int,
    depth: int,
    width: int = 64,
    activation: str = "relu",
    norm: str | None = "batch",
    init: str = "default",
    order: str = "pre",
    layers_per_block: int = 2,
    alpha: float = 1.0,
    learnable_alpha: bool = False,
    bias: bool = True,
) -> Net:
    """A residual MLP with ``depth`` Linear layers: a stem, (depth − 2)/layers_per_block blocks, a head.

    With ``order="pre"`` the stem is a bare Linear and a final norm → σ sits before the head (He et al.
    2016 need it: the last block's output is an un-normalized sum). With ``order="post"`` the stem is
    Linear → norm → σ and nothing sits before the head.
    """
    _check_common(in_features, out_features, width, depth)
    check_int("layers_per_block", layers_per_block, minimum=1)
    check_choice("order", order, ("post", "pre"))
    if (depth - 2) % layers_per_block != 0:
        raise ValueError(
            f"`depth`={depth} does not fit blocks of {layers_per_block} layers: depth − 2 must be a "
            f"multiple of `layers_per_block` (e.g. depth={depth - (depth - 2) % layers_per_block})."
        )
    n_blocks = (depth - 2) // layers_per_block
    blocks = [
        ResidualBlock(
            width, activation, norm, order, layers_per_block, alpha, learnable_alpha, "linear", bias
        )
        for _ in range(n_blocks)
    ]
    stem, final = _stem_and_final(
        nn.Linear(in_features, width, bias=bias), width, norm, activation, "linear", order
    )
    net = Net(stem, blocks, final, nn.Linear(width, out_features, bias=bias))
    return init_weights(net, init, activation)


def _cnn_head(channels: int, n_classes: int) -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, n_classes))


def plain_cnn(
    depth: int,
    channels: int = 16,
    in_channels: int = 1,
    n_classes: int = 10,
    activation: str = "relu",
    norm: str | None = "batch",
    init: str = "kaiming",
) -> Net:
    """A plain CNN for small images: (3×3 conv → norm → σ) × (depth − 1), global average pool, Linear."""
    _check_common(in_channels, n_classes, channels, depth)
    stem, final = _stem_and_final(
        nn.Conv2d(in_channels, channels, 3, padding=1), channels, norm, activation, "conv", "post"
    )
    blocks = [PlainLayer(channels, activation, norm, "conv") for _ in range(depth - 2)]
    net = Net(stem, blocks, final, _cnn_head(channels, n_classes))
    return init_weights(net, init, activation)


def residual_cnn(
    depth: int,
    channels: int = 16,
    in_channels: int = 1,
    n_classes: int = 10,
    activation: str = "relu",
    norm: str | None = "batch",
    init: str = "kaiming",
    order: str = "pre",
) -> Net:
    """A residual CNN for small images with two 3×3 convolutions per block (depth − 2 must be even)."""
    _check_common(in_channels, n_classes, channels, depth)
    check_choice("order", order, ("post", "pre"))
    if (depth - 2) % 2:
        raise ValueError(f"`depth`={depth}: depth − 2 must be even (two convolutions per block).")
    blocks = [
        ResidualBlock(channels, activation, norm, order, 2, kind="conv") for _ in range((depth - 2) // 2)
    ]
    stem, final = _stem_and_final(
        nn.Conv2d(in_channels, channels, 3, padding=1), channels, norm, activation, "conv", order
    )
    net = Net(stem, blocks, final, _cnn_head(channels, n_classes))
    return init_weights(net, init, activation)


def count_parameters(model: nn.Module) -> int:
    """The number of trainable scalars in ``model``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def default_init_std(fan_in: int) -> float:
    """The standard deviation of PyTorch's default Linear init, U(−1/√fan_in, 1/√fan_in): 1/√(3·fan_in)."""
    check_int("fan_in", fan_in, minimum=1)
    return 1.0 / math.sqrt(3 * fan_in)
