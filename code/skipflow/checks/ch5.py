"""Checkers for chapter 5's exercises: ReZero, stochastic depth, saved bytes, the Fixup scale."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from skipflow import runtime
from skipflow.checks._core import Incorrect, as_float, call, exercise, require, require_close
from skipflow.memory import saved_bytes

__all__ = ["fixup_scale", "rezero_block", "saved_bytes_of_block", "stochastic_depth_step"]


@exercise("A ReZero block")
def rezero_block(cls: Callable[[int], nn.Module]) -> None:
    """Check ``cls(width)`` builds a block h + α·F(h) with a learnable scalar α that starts at 0."""
    runtime.manual_seed(0)
    block = call(cls, 8)
    require(
        isinstance(block, nn.Module), f"`ReZeroBlock(8)` should be an nn.Module, got {type(block).__name__}."
    )
    h = torch.randn(5, 8)
    out = _as_out(call(block, h), (5, 8))
    require(
        torch.allclose(out, h, atol=1e-6),
        "at initialization the block should be the identity (α = 0, so h + α·F(h) = h).",
    )
    scalars = [p for p in block.parameters() if p.numel() == 1]
    require(
        scalars,
        "α must be a learnable scalar: an nn.Parameter with one element (a plain tensor or a buffer is "
        "not trained).",
    )
    require(
        any(float(p.detach()) == 0.0 for p in scalars), "the learnable scalar α must be initialized to 0."
    )
    h.requires_grad_(True)
    _as_out(call(block, h), (5, 8)).pow(2).sum().backward()
    require(
        any(p.grad is not None and float(p.grad.abs()) > 0 for p in scalars),
        "α gets no gradient: use it in the forward pass as h + α * F(h).",
    )
    with torch.no_grad():
        for p in scalars:
            p.fill_(1.0)
    out1 = _as_out(call(block, h.detach()), (5, 8))
    require(
        not torch.allclose(out1, h.detach(), atol=1e-6),
        "with α = 1 the block should add its branch F(h); it still returns h. Is F applied?",
    )


def _as_out(value: object, shape: tuple[int, ...]) -> torch.Tensor:
    require(isinstance(value, torch.Tensor), f"the block should return a tensor, got {type(value).__name__}.")
    require(tuple(value.shape) == shape, f"the output should have shape {shape}, got {tuple(value.shape)}.")
    return value


@exercise("Stochastic depth with test-time scaling")
def stochastic_depth_step(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``fn(h, branch, survival, training)`` against Huang et al.'s rule."""
    h = torch.randn(4, 6)

    def branch(v: torch.Tensor) -> torch.Tensor:
        return 2.0 * v + 1.0

    full = h + branch(h)
    test = call(fn, h, branch, 0.7, False)
    require(isinstance(test, torch.Tensor), f"return a tensor, got {type(test).__name__}.")
    if torch.allclose(test, full):
        raise Incorrect(
            "at test time scale the branch by the survival probability: h + p·F(h), not h + F(h)."
        )
    if torch.allclose(test, h + branch(h) / 0.7):
        raise Incorrect("at test time multiply by p (Huang et al.), do not divide by it.")
    require(torch.allclose(test, h + 0.7 * branch(h), atol=1e-6), "at test time return h + p·F(h).")
    runtime.manual_seed(0)
    kept = 0
    trials = 400
    for _ in range(trials):
        out = call(fn, h, branch, 0.7, True)
        require(isinstance(out, torch.Tensor), f"return a tensor, got {type(out).__name__}.")
        if torch.allclose(out, full, atol=1e-6):
            kept += 1
        elif torch.allclose(out, h + branch(h) / 0.7, atol=1e-6):
            raise Incorrect("in training return h + F(h) when the branch survives (no 1/p rescaling here).")
        else:
            require(
                torch.allclose(out, h, atol=1e-6),
                "in training the output must be h (branch dropped) or h + F(h) (branch kept); got neither. "
                "Drop the whole branch for the whole batch, not single entries.",
            )
    share = kept / trials
    # 400 Bernoulli(0.7) draws: the standard deviation of the share is 0.023, so ±0.1 is > 4 sigma.
    require(
        abs(share - 0.7) < 0.1,
        f"with survival 0.7 the branch should be kept ~70% of the time; got {share:.0%}.",
    )


@exercise("Bytes saved for backward")
def saved_bytes_of_block(fn: Callable[[int, int], int]) -> None:
    """Check ``fn(batch, width)``: bytes saved for backward by a Linear-ReLU-Linear residual block."""
    for batch, width in [(32, 16), (7, 50), (128, 64)]:
        got = as_float(call(fn, batch, width), f"for batch={batch}, width={width}, your count")
        expected = _block_saved_bytes(batch, width)
        unit = batch * width * 4
        hint = ""
        if math.isclose(got, 3 * unit):
            hint = " One tensor is saved twice (ReLU's output is the next Linear's input): count it once."
        elif math.isclose(got, expected / 4):
            hint = " float32 takes 4 bytes per number."
        elif math.isclose(got, 2 * unit + 2 * width * width * 4):
            hint = " Leave the weights out: they are in memory anyway."
        require(
            math.isclose(got, expected),
            f"for batch={batch}, width={width} autograd saves {expected} bytes, you said {got:g}.{hint}",
        )


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.branch = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.branch(h)


def _block_saved_bytes(batch: int, width: int) -> int:
    runtime.manual_seed(0)
    return saved_bytes(_Block(width), torch.randn(batch, width))


@exercise("The Fixup scale")
def fixup_scale(fn: Callable[[int, int], float]) -> None:
    """Check ``fn(n_blocks, m)`` returns L^(-1/(2m-2))."""
    for n_blocks, m in [(16, 2), (64, 3), (10, 4)]:
        got = as_float(call(fn, n_blocks, m), f"for L={n_blocks}, m={m}, your scale")
        expected = n_blocks ** (-1.0 / (2 * m - 2))
        hint = ""
        if math.isclose(got, n_blocks ** (-1.0 / (2 * m)), rel_tol=1e-6):
            hint = " The exponent's denominator is 2m − 2, not 2m."
        elif math.isclose(got, n_blocks**-0.5, rel_tol=1e-6):
            hint = " 1/√L is right only for m = 2; the exponent depends on m."
        elif math.isclose(got, 1.0 / expected, rel_tol=1e-6):
            hint = " The scale shrinks the layers: the exponent is negative."
        require(
            math.isclose(got, expected, rel_tol=1e-6),
            f"for L={n_blocks}, m={m} expected {expected:.6g}.{hint}",
        )
    require_close(call(fn, 1, 2), 1.0, "for a single block the scale")
