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
    """Check ``cls(width)`` builds h + α·F(h), F = Linear → ReLU → Linear, with a learnable scalar α = 0.

    Two widths are tried (an answer that hard-codes one width fails the other). With α set to 1, the
    difference out − h must equal lin2(relu(lin1(h))) computed from the block's own two Linear layers, which
    rejects a missing branch (h + α·h), a branch without its ReLU, a single-Linear branch and a highway gate
    (1 − α)·h + α·F(h).
    """
    for width in (8, 5):
        _check_rezero(cls, width)


def _check_rezero(cls: Callable[[int], nn.Module], width: int) -> None:
    runtime.manual_seed(0)
    block = call(cls, width)
    require(
        isinstance(block, nn.Module),
        f"`ReZeroBlock({width})` should be an nn.Module, got {type(block).__name__}.",
    )
    h = torch.randn(5, width)
    out = _as_out(call(block, h), (5, width))
    require(
        torch.allclose(out, h, atol=1e-6),
        f"at initialization the block should be the identity (α = 0, so h + α·F(h) = h); for width {width} "
        "it is not.",
    )
    scalars = [p for p in block.parameters() if p.numel() == 1]
    require(
        scalars,
        "α must be a learnable scalar: an nn.Parameter with one element (a plain tensor, a buffer or a "
        "per-feature vector is not what the exercise asks).",
    )
    require(
        any(float(p.detach()) == 0.0 for p in scalars), "the learnable scalar α must be initialized to 0."
    )
    h.requires_grad_(True)
    _as_out(call(block, h), (5, width)).pow(2).sum().backward()
    require(
        any(p.grad is not None and float(p.grad.abs()) > 0 for p in scalars),
        "α gets no gradient: use it in the forward pass as h + α * F(h).",
    )
    h = h.detach()
    with torch.no_grad():
        for p in scalars:
            p.fill_(1.0)
        out1 = _as_out(call(block, h), (5, width))
        require(
            not torch.allclose(out1, h, atol=1e-6),
            "with α = 1 the block should add its branch F(h); it still returns h. Is F applied?",
        )
        require(
            not torch.allclose(out1, 2 * h, atol=1e-5),
            "with α = 1 the block returns 2h: it computes h + α·h, with no branch. Apply F to h: h + α·F(h).",
        )
        linears = [m for m in block.modules() if isinstance(m, nn.Linear)]
        require(
            len(linears) == 2,
            f"F should be Linear → ReLU → Linear: the block has {len(linears)} nn.Linear layer(s), not 2.",
        )
        lin1, lin2 = linears
        require(
            (lin1.in_features, lin1.out_features, lin2.in_features, lin2.out_features)
            == (width, width, width, width),
            f"both Linear layers should map width → width ({width} → {width}).",
        )
        branch = out1 - h
        expected = lin2(torch.relu(lin1(h)))
        if torch.allclose(out1, expected, atol=1e-5):
            raise Incorrect(
                "with α = 1 the block returns F(h) alone: this is a highway-style gate (1 − α)·h + α·F(h). "
                "The shortcut must stay h at every α: h + α·F(h)."
            )
        if torch.allclose(branch, lin2(lin1(h)), atol=1e-5):
            raise Incorrect("the branch has no ReLU: F must be Linear → ReLU → Linear.")
        require(
            torch.allclose(branch, expected, atol=1e-5),
            "with α = 1 the block should return h + F(h) with F = Linear → ReLU → Linear, the two Linear "
            "layers applied in the order they were created; it returns something else.",
        )


def _as_out(value: object, shape: tuple[int, ...]) -> torch.Tensor:
    require(isinstance(value, torch.Tensor), f"the block should return a tensor, got {type(value).__name__}.")
    require(tuple(value.shape) == shape, f"the output should have shape {shape}, got {tuple(value.shape)}.")
    return value


@exercise("Stochastic depth with test-time scaling")
def stochastic_depth_step(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``fn(h, branch, survival, training)`` against Huang et al.'s rule, for two survival rates.

    Two rates (0.7 and 0.3) are tried, so an answer that hard-codes one of them fails; neither is 0.5, so an
    answer that keeps the branch with probability 1 − p instead of p fails too.
    """
    runtime.manual_seed(0)
    h = torch.randn(4, 6)

    def branch(v: torch.Tensor) -> torch.Tensor:
        return 2.0 * v + 1.0

    full = h + branch(h)
    for p in (0.7, 0.3):
        test = _as_out(call(fn, h, branch, p, False), tuple(h.shape))
        if torch.allclose(test, full):
            raise Incorrect(
                "at test time scale the branch by the survival probability: h + p·F(h), not h + F(h)."
            )
        if torch.allclose(test, h + branch(h) / p):
            raise Incorrect("at test time multiply by p (Huang et al.), do not divide by it.")
        require(
            torch.allclose(test, h + p * branch(h), atol=1e-6),
            f"at test time return h + p·F(h) (with survival p = {p}); your answer does not use p = {p}.",
        )
        kept = 0
        trials = 400
        for _ in range(trials):
            out = _as_out(call(fn, h, branch, p, True), tuple(h.shape))
            if torch.allclose(out, full, atol=1e-6):
                kept += 1
            elif torch.allclose(out, h + branch(h) / p, atol=1e-6):
                raise Incorrect(
                    "in training return h + F(h) when the branch survives (no 1/p rescaling here)."
                )
            else:
                require(
                    torch.allclose(out, h, atol=1e-6),
                    "in training the output must be h (branch dropped) or h + F(h) (branch kept); got "
                    "neither. Drop the whole branch for the whole batch (one draw per call), not single "
                    "entries or single rows.",
                )
        share = kept / trials
        # 400 Bernoulli(p) draws: the standard deviation of the share is at most 0.025, so ±0.1 is > 4 sigma.
        require(
            abs(share - p) < 0.1,
            f"with survival {p} the branch should be kept ~{p:.0%} of the time; got {share:.0%}.",
        )


@exercise("Bytes saved for backward")
def saved_bytes_of_block(fn: Callable[[int, int], int]) -> None:
    """Check ``fn(batch, width)``: bytes saved for backward by a Linear-ReLU-Linear residual block."""
    cases = [(32, 16), (7, 50), (128, 64)]
    got = {(b, w): as_float(call(fn, b, w), f"for batch={b}, width={w}, your count") for b, w in cases}
    expected = {(b, w): _block_saved_bytes(b, w) for b, w in cases}
    # Diagnose a wrong answer by the mistake that explains every case at once (one case can fit several).
    mistakes = [
        (
            lambda b, w: 3 * b * w * 4,
            "One tensor is saved twice (ReLU's output is the next Linear's input): count it once.",
        ),
        (lambda b, w: b * w * 4, "The ReLU's output, which the second Linear also reads, is saved too."),
        (lambda b, w: 2 * b * w, "float32 takes 4 bytes per number."),
        (lambda b, w: 2 * b * w * 4 + 2 * w * w * 4, "Leave the weights out: they are in memory anyway."),
    ]
    for b, w in cases:
        if math.isclose(got[b, w], expected[b, w]):
            continue
        hint = next(
            (" " + text for rule, text in mistakes if all(math.isclose(got[c], rule(*c)) for c in cases)), ""
        )
        raise Incorrect(
            f"for batch={b}, width={w} autograd saves {expected[b, w]} bytes, you said {got[b, w]:g}.{hint}"
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
