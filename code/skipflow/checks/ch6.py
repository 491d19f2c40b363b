"""Checkers for chapter 6 (the residual stream in Transformers)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from skipflow import runtime
from skipflow.checks._core import Incorrect, NotSolved, as_float, call, exercise, is_placeholder, require
from skipflow.hyper import sinkhorn_step as _reference_sinkhorn_step
from skipflow.transformer import Block, block_parts, post_ln_forward, pre_ln_forward, rank_residual

__all__ = ["pre_ln_gradient_slope", "pre_ln_refactor", "rank_one_residual", "sinkhorn_one_step"]


def _tensor_result(value: Any, what: str, shape: tuple[int, ...]) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise Incorrect(f"{what} should be a tensor of shape {shape}, got {type(value).__name__}.")
    require(
        tuple(value.shape) == shape,
        f"{what} should have shape {shape}, got {tuple(value.shape)}.",
    )
    require(bool(torch.isfinite(value).all()), f"{what} contains NaN or infinite values.")
    return value.detach().to(torch.float64)


def _matrices() -> list[tuple[str, torch.Tensor]]:
    gen = runtime.generator(606)
    random = torch.randn(12, 8, generator=gen, dtype=torch.float64)
    shifted = torch.randn(5, 3, generator=gen, dtype=torch.float64) * 0.1 + torch.tensor([4.0, -2.0, 1.0])
    same = torch.randn(1, 6, generator=gen, dtype=torch.float64).expand(7, 6).clone()
    return [
        ("a random 12 × 8 token matrix", random),
        ("a 5 × 3 matrix whose tokens are close to one common row", shifted),
        ("a 7 × 6 matrix whose 7 tokens are identical (rank one)", same),
    ]


@exercise("The distance from rank one, res(X)")
def rank_one_residual(fn: Callable[[torch.Tensor], Any]) -> None:
    """Check ``fn(X)`` returns ‖X − 1 x̄ᵀ‖_F / ‖X‖_F for a (tokens × features) matrix X."""
    for name, x in _matrices():
        got = as_float(call(fn, x.clone()), f"for {name}, res(X)")
        expected = float(rank_residual(x))
        if math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9):
            continue
        hint = ""
        feature_mean = float((x - x.mean(-1, keepdim=True)).norm() / x.norm())
        unbiased = float((x - x.sum(0) / (x.shape[0] - 1)).norm() / x.norm())
        if math.isclose(got, 1.0, rel_tol=1e-6):
            hint = " Subtract the mean token x̄ (the mean over rows) before taking the norm."
        elif math.isclose(got, feature_mean, rel_tol=1e-6):
            hint = " Average over the tokens (dim 0, the rows), not over the features."
        elif math.isclose(got, float((x - x.mean(0)).norm()), rel_tol=1e-6):
            hint = " Divide by ‖X‖ so that res is a ratio between 0 and 1."
        elif math.isclose(got, unbiased, rel_tol=1e-6):
            hint = " The mean over T tokens divides their sum by T, not by T − 1."
        raise Incorrect(f"for {name}, res(X) is {expected:.6g}, you returned {got:.6g}.{hint}")


def _positive_matrices() -> list[tuple[str, torch.Tensor]]:
    gen = runtime.generator(607)
    return [
        ("a random positive 4 × 4 matrix", torch.rand(4, 4, generator=gen, dtype=torch.float64) + 0.1),
        ("a random positive 3 × 3 matrix", torch.rand(3, 3, generator=gen, dtype=torch.float64) * 5 + 0.01),
        ("exp(I + 0.1 N) for a 5 × 5 N", torch.exp(torch.eye(5) + 0.1 * torch.randn(5, 5, generator=gen))),
    ]


@exercise("One Sinkhorn–Knopp step")
def sinkhorn_one_step(fn: Callable[[torch.Tensor], Any]) -> None:
    """Check ``fn(M)`` divides every row of M by its sum, then every column by its sum (one step)."""
    for name, m in _positive_matrices():
        m, n = m.double(), m.shape[0]
        got = _tensor_result(call(fn, m.clone()), f"for {name}, your result", (n, n))
        expected = _reference_sinkhorn_step(m)
        if torch.allclose(got, expected, rtol=1e-6, atol=1e-9):
            continue
        hint = ""
        rows_only = m / m.sum(-1, keepdim=True)
        cols_first = m / m.sum(-2, keepdim=True)
        cols_first = cols_first / cols_first.sum(-1, keepdim=True)
        if torch.allclose(got, rows_only, rtol=1e-6):
            hint = " You normalized the rows; now divide every column by its sum too."
        elif torch.allclose(got, cols_first, rtol=1e-6):
            hint = " Normalize the rows first, then the columns: after one step the columns sum to one."
        elif torch.allclose(got, _reference_sinkhorn_step(expected), rtol=1e-6):
            hint = " That is two steps; the exercise asks for one."
        elif torch.allclose(got.sum(-2), torch.ones(n, dtype=torch.float64), atol=1e-6):
            hint = " Your columns sum to one, but the entries are not those of rows-then-columns."
        raise Incorrect(f"for {name}, the result differs from one rows-then-columns step.{hint}")


def _parts_cases() -> list[tuple[str, Block, torch.Tensor]]:
    cases = []
    for i, (d, t) in enumerate(((16, 5), (8, 3))):
        runtime.manual_seed(660 + i)
        block = Block(d, 4, "pre")
        with torch.no_grad():  # LayerNorm with non-trivial scales, so each norm is told apart
            for norm in block.norms:
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.uniform_(-0.3, 0.3)
        x = torch.randn(2, t, d, generator=runtime.generator(670 + i)) * 2 + 0.5
        cases.append((f"a block of width {d} on {t} tokens", block, x))
    return cases


@exercise("From Post-LN to Pre-LN")
def pre_ln_refactor(fn: Callable[[torch.Tensor, Any], Any]) -> None:
    """Check ``fn(x, parts)`` computes the Pre-LN block with the same four layers as the Post-LN one."""
    for name, block, x in _parts_cases():
        parts = block_parts(block)
        with torch.no_grad():
            got = _tensor_result(call(fn, x.clone(), parts), f"for {name}, your output", tuple(x.shape))
            expected = pre_ln_forward(x, parts).double()
            if torch.allclose(got, expected, atol=1e-5):
                continue
            hint = ""
            still_post = torch.allclose(got, post_ln_forward(x, parts).double(), atol=1e-5)
            stream_normed = parts.ln1(x) + parts.attn(parts.ln1(x))
            stream_normed = stream_normed + parts.mlp(parts.ln2(stream_normed))
            swapped = x + parts.attn(parts.ln2(x))
            swapped = swapped + parts.mlp(parts.ln1(swapped))
            parallel = x + parts.attn(parts.ln1(x)) + parts.mlp(parts.ln2(x))
            if still_post:
                hint = " This is the Post-LN block: a LayerNorm still follows each addition."
            elif torch.allclose(got, stream_normed.double(), atol=1e-5):
                hint = " The shortcut must carry x itself, not LN(x): normalize only the branch's input."
            elif torch.allclose(got, swapped.double(), atol=1e-5):
                hint = " ln1 belongs to the attention branch and ln2 to the MLP branch."
            elif torch.allclose(got, parallel.double(), atol=1e-5):
                hint = " The MLP must read the stream after the attention's addition, not the block input."
            elif torch.allclose(got, (x + parts.attn(parts.ln1(x))).double(), atol=1e-5):
                hint = " Add the MLP branch too."
            raise Incorrect(f"for {name}, your output differs from the Pre-LN block's.{hint}")


@exercise("How the Pre-LN last-layer gradient scales with depth")
def pre_ln_gradient_slope(answer: Any) -> None:
    """Check the predicted log-log slope of ‖∂𝓛/∂W^{2,L}‖ against L for Pre-LN: −1/2."""
    if is_placeholder(answer):
        raise NotSolved
    if callable(answer):
        answer = call(answer)
    if isinstance(answer, list | tuple):
        raise Incorrect("the slope should be a single number, not a list.")
    slope = as_float(answer, "your slope")
    if math.isclose(slope, -0.5, abs_tol=0.02):
        return
    hint = ""
    if math.isclose(slope, 0.0, abs_tol=0.02):
        hint = " Zero is Post-LN's answer: there the last LayerNorm sees a stream of fixed size."
    elif math.isclose(slope, 0.5, abs_tol=0.02):
        hint = " The gradient shrinks as the stream grows: the sign is negative."
    elif math.isclose(slope, -1.0, abs_tol=0.02):
        hint = " The stream's norm grows like √L, not like L: its 2L writes are roughly independent."
    raise Incorrect(f"a slope of {slope:g} is not what the √L growth of the stream predicts.{hint}")
