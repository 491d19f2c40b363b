"""Shortcuts for when shapes change, the bottleneck block, and a small CNN for 8×8 digits (chapter 2).

When a block changes the number of channels or the spatial size, ``x`` and ``F(x)`` cannot be added as
they are. He et al. (2016) compare two fixes:

- option A, :class:`ZeroPadShortcut`: subsample ``x`` with the stride and pad the new channels with zeros
  (no parameters);
- option B, :class:`ProjectionShortcut`: a learned 1×1 convolution with the stride (or a Linear layer for
  vectors), followed by batch normalization.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from skipflow._validate import check_choice, check_int

SHORTCUTS = ("auto", "identity", "projection", "zeropad")


class ProjectionShortcut(nn.Module):
    """Option B: a 1×1 convolution with ``stride`` (``kind="conv"``) or a Linear layer (``kind="linear"``).

    The convolution has no bias and is followed by batch normalization, as in the ResNet paper.
    """

    def __init__(self, in_features: int, out_features: int, stride: int = 1, kind: str = "conv") -> None:
        super().__init__()
        check_int("in_features", in_features, minimum=1)
        check_int("out_features", out_features, minimum=1)
        check_int("stride", stride, minimum=1)
        check_choice("kind", kind, ("conv", "linear"))
        if kind == "linear":
            if stride != 1:
                raise ValueError("`stride` must be 1 for kind='linear' (vectors have no spatial size).")
            self.proj: nn.Module = nn.Linear(in_features, out_features, bias=False)
        else:
            self.proj = nn.Sequential(
                nn.Conv2d(in_features, out_features, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_features),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class ZeroPadShortcut(nn.Module):
    """Option A: keep every ``stride``-th pixel, then append zero channels up to ``out_channels``.

    It has no parameters, and the gradient it passes back to the kept pixels and old channels is the
    identity.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        check_int("in_channels", in_channels, minimum=1)
        check_int("out_channels", out_channels, minimum=1)
        check_int("stride", stride, minimum=1)
        if out_channels < in_channels:
            raise ValueError(
                f"`out_channels` ({out_channels}) must be >= `in_channels` ({in_channels}): zero padding "
                "can only add channels; use ProjectionShortcut to reduce them."
            )
        self.extra = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))  # pad the channel dimension at its end


def make_shortcut(in_channels: int, out_channels: int, stride: int, shortcut: str) -> nn.Module:
    """The shortcut by name. ``"auto"`` is the identity when shapes match and a projection otherwise."""
    check_choice("shortcut", shortcut, SHORTCUTS)
    same = in_channels == out_channels and stride == 1
    if shortcut == "auto":
        shortcut = "identity" if same else "projection"
    if shortcut == "identity":
        if not same:
            raise ValueError(
                f"`shortcut`='identity' needs in_channels == out_channels and stride 1, got {in_channels}→"
                f"{out_channels}, stride {stride}; use 'projection' or 'zeropad'."
            )
        return nn.Identity()
    if shortcut == "projection":
        return ProjectionShortcut(in_channels, out_channels, stride)
    return ZeroPadShortcut(in_channels, out_channels, stride)


class BasicBlock(nn.Module):
    """The original ResNet block: relu(shortcut(x) + BN(conv3×3(relu(BN(conv3×3(x)))))).

    The first convolution carries the ``stride``; ``shortcut`` is one of ``SHORTCUTS``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, shortcut: str = "auto") -> None:
        super().__init__()
        check_int("stride", stride, minimum=1)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """The bottleneck block: 1×1 (reduce to ``mid_channels``) → 3×3 → 1×1 (expand), then add and ReLU.

    Written the way common library code writes it, with in-place ReLUs and ``out += identity``: this is
    safe, because every tensor modified in place is one that no backward function saved.
    """

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        stride: int = 1,
        shortcut: str = "auto",
    ) -> None:
        super().__init__()
        check_int("mid_channels", mid_channels, minimum=1)
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.conv2 = nn.Conv2d(mid_channels, mid_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_channels)
        self.conv3 = nn.Conv2d(mid_channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))  # in place on BN's output, which BN did not save
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity  # in place on BN's output again: safe for the same reason
        return self.relu(out)


def small_resnet(
    shortcut: str = "projection", channels: Sequence[int] = (8, 16), n_classes: int = 10
) -> nn.Sequential:
    """A small ResNet for 1×8×8 digits with one downsampling stage and a bottleneck block.

    stem (3×3 conv, c0) → BasicBlock(c0→c0) → BasicBlock(c0→c1, stride 2, ``shortcut``) →
    Bottleneck(c1→c1/4→c1) → global average pool → Linear(c1 → n_classes).
    """
    check_choice("shortcut", shortcut, ("projection", "zeropad"))
    if len(channels) != 2 or not all(isinstance(c, int) and c >= 4 for c in channels):
        raise ValueError("`channels` must be two ints >= 4, e.g. (8, 16).")
    c0, c1 = channels
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, c0, 3, padding=1, bias=False), nn.BatchNorm2d(c0), nn.ReLU()),
        BasicBlock(c0, c0),
        BasicBlock(c0, c1, stride=2, shortcut=shortcut),
        Bottleneck(c1, c1 // 4, c1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(c1, n_classes),
    )


def trace_shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """Run ``x`` through an ``nn.Sequential`` and return (name, output shape) after each child."""
    if not isinstance(model, nn.Sequential):
        raise TypeError("`model` must be an nn.Sequential (for example small_resnet()).")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`x` must be a torch.Tensor, got {type(x).__name__}.")
    shapes = [("input", tuple(x.shape))]
    with torch.no_grad():
        for i, child in enumerate(model):
            x = child(x)
            shapes.append((f"{i}: {type(child).__name__}", tuple(x.shape)))
    return shapes
