"""Wrong answers to chapter 5's exercises: ReZero, stochastic depth, saved bytes, the Fixup scale."""

from __future__ import annotations

import torch
from torch import nn

from wrong_answers import Entry, Wrong

# --- A ReZero block ------------------------------------------------------------------------------------


class ReZero(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.branch = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.alpha * self.branch(h)


class FixedWidth(ReZero):
    """Hard-codes the width the checker tries first."""

    def __init__(self, width: int) -> None:
        super().__init__(8)


class NoBranch(ReZero):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.alpha * h


class Highway(ReZero):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return (1 - self.alpha) * h + self.alpha * self.branch(h)


class SingleLinear(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.branch = nn.Linear(width, width)
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.alpha * self.branch(h)


class NoReLU(ReZero):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.alpha * self.branch[2](self.branch[0](h))


class BufferAlpha(ReZero):
    def __init__(self, width: int) -> None:
        super().__init__(width)
        del self.alpha
        self.register_buffer("alpha", torch.zeros(()))


class AlphaOne(ReZero):
    """α starts at 1 instead of 0."""

    def __init__(self, width: int) -> None:
        super().__init__(width)
        self.alpha = nn.Parameter(torch.ones(()))


class VectorAlpha(ReZero):
    """A per-feature α of shape (width,) instead of one scalar."""

    def __init__(self, width: int) -> None:
        super().__init__(width)
        self.alpha = nn.Parameter(torch.zeros(width))


class ExtraDim(ReZero):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return (h + self.alpha * self.branch(h)).unsqueeze(0)


# --- Stochastic depth -------------------------------------------------------------------------------------


def stochastic_depth(h, branch, survival, training):
    if training:
        return h + branch(h) if torch.rand(()).item() < survival else h
    return h + survival * branch(h)


def hardcoded_p(h, branch, survival, training):
    if training:
        return h + branch(h) if torch.rand(()).item() < 0.7 else h
    return h + 0.7 * branch(h)


def no_test_scaling(h, branch, survival, training):
    if training:
        return stochastic_depth(h, branch, survival, training)
    return h + branch(h)


def inverted(h, branch, survival, training):
    if training:
        return h + branch(h) / survival if torch.rand(()).item() < survival else h
    return h + branch(h)


def keeps_with_one_minus_p(h, branch, survival, training):
    if training:
        return h + branch(h) if torch.rand(()).item() < 1 - survival else h
    return h + survival * branch(h)


def per_entry(h, branch, survival, training):
    if training:
        return h + (torch.rand_like(h) < survival) * branch(h)
    return h + survival * branch(h)


def mean_over_batch(h, branch, survival, training):
    return stochastic_depth(h, branch, survival, training).mean(0)


# --- Bytes saved for backward -----------------------------------------------------------------------------


def saved_bytes(batch, width):
    return 2 * batch * width * 4


CATALOGUE = [
    Entry(
        checker="rezero_block",
        reference=ReZero,
        wrong=[
            Wrong("hardcoded", "builds width-8 layers whatever the width", FixedWidth, "RuntimeError"),
            Wrong("mechanism", "h + α·h: no branch at all", NoBranch, "no branch"),
            Wrong("mechanism", "a highway gate (1 − α)·h + α·F(h)", Highway, "highway"),
            Wrong("mechanism", "a single Linear as the branch", SingleLinear, "1 nn.Linear"),
            Wrong("mechanism", "a branch without its ReLU", NoReLU, "no ReLU"),
            Wrong("mechanism", "α is a buffer, not trained", BufferAlpha, "learnable scalar"),
            Wrong("off_by_one", "α starts at 1", AlphaOne, "identity"),
            Wrong("shape", "a per-feature α of shape (width,)", VectorAlpha, "learnable scalar"),
            Wrong("shape", "an extra leading dimension", ExtraDim, "shape"),
        ],
    ),
    Entry(
        checker="stochastic_depth_step",
        reference=stochastic_depth,
        wrong=[
            Wrong("hardcoded", "hard-codes p = 0.7", hardcoded_p, "p = 0.3"),
            Wrong("mechanism", "no scaling at test time", no_test_scaling, "scale the branch"),
            Wrong("mechanism", "inverted scaling (1/p in training)", inverted, "h + p·F(h)"),
            Wrong("mechanism", "drops single entries, not the whole branch", per_entry, "whole branch"),
            Wrong(
                "off_by_one", "keeps the branch with probability 1 − p", keeps_with_one_minus_p, "kept ~70%"
            ),
            Wrong("shape", "averages over the batch", mean_over_batch, "shape"),
        ],
    ),
    Entry(
        checker="saved_bytes_of_block",
        reference=saved_bytes,
        wrong=[
            Wrong("hardcoded", "the answer for batch 32, width 16", lambda b, w: 4096, "for batch=7"),
            Wrong("mechanism", "counts ReLU's output twice", lambda b, w: 3 * b * w * 4, "count it once"),
            Wrong(
                "mechanism", "counts the weights too", lambda b, w: 2 * b * w * 4 + 2 * w * w * 4, "weights"
            ),
            Wrong("mechanism", "counts numbers, not bytes", lambda b, w: 2 * b * w, "4 bytes"),
            Wrong("off_by_one", "one activation instead of two", lambda b, w: b * w * 4, "ReLU's output"),
            Wrong("shape", "a list of per-tensor bytes", lambda b, w: [b * w * 4, b * w * 4], "a number"),
        ],
    ),
    Entry(
        checker="fixup_scale",
        reference=lambda n, m: n ** (-1.0 / (2 * m - 2)),
        wrong=[
            Wrong("hardcoded", "the value for L = 16, m = 2", lambda n, m: 0.25, "for L=64, m=3"),
            Wrong("mechanism", "1/√L whatever m", lambda n, m: n**-0.5, "only for m = 2"),
            Wrong("mechanism", "a positive exponent", lambda n, m: n ** (1.0 / (2 * m - 2)), "negative"),
            Wrong("off_by_one", "exponent 1/(2m)", lambda n, m: n ** (-1.0 / (2 * m)), "2m − 2"),
            Wrong("shape", "a one-element list", lambda n, m: [n ** (-1.0 / (2 * m - 2))], "a number"),
        ],
    ),
]
