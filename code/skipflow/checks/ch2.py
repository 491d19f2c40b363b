"""Checkers for chapter 2's exercises: a block with a projection shortcut, the end-to-end spectrum, and a
residual block's backward pass written by hand."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from skipflow import runtime
from skipflow.checks._core import Incorrect, as_tensor, call, exercise, require
from skipflow.jacobians import end_to_end_jacobian, input_jacobian, make_blocks

__all__ = ["end_to_end_singular_values", "projection_block", "residual_backward"]


def _module(fn: Callable, in_features: int, out_features: int) -> nn.Module:
    block = call(fn, in_features, out_features)
    require(
        isinstance(block, nn.Module),
        f"make_block({in_features}, {out_features}) should return an nn.Module, got {type(block).__name__}.",
    )
    for name in ("branch", "shortcut"):
        require(
            isinstance(getattr(block, name, None), nn.Module),
            f"the block needs an attribute `{name}` holding an nn.Module (self.{name} = ...).",
        )
    return block.double().eval()


def _run(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return call(block, x)


def _zero_branch(block: nn.Module) -> None:
    with torch.no_grad():
        for p in block.branch.parameters():
            p.zero_()


@exercise("A residual block with a projection shortcut")
def projection_block(make_block: Callable[[int, int], nn.Module]) -> None:
    """Check ``make_block(in_features, out_features)``: shapes, zero branch ⇒ shortcut, and I + J."""
    runtime.manual_seed(0)
    x = torch.randn(5, 6, dtype=torch.float64)
    for n_out in (6, 3):
        block = _module(make_block, 6, n_out)
        out = as_tensor(_run(block, x), "the block's output")
        require(
            tuple(out.shape) == (5, n_out),
            f"for make_block(6, {n_out}) and a batch of shape (5, 6) the output should have shape "
            f"(5, {n_out}), got {tuple(out.shape)}.",
        )
    same = _module(make_block, 6, 6)
    require(
        sum(p.numel() for p in same.shortcut.parameters()) == 0,
        "when in_features == out_features the shortcut should be the identity (nn.Identity()), with no "
        "parameters: a projection is only needed when the shapes differ.",
    )
    runtime.manual_seed(1)
    x1 = torch.randn(6, dtype=torch.float64)
    jac = call(input_jacobian, same, x1)
    jac_branch = call(input_jacobian, same.branch, x1)
    require(
        torch.allclose(jac, torch.eye(6, dtype=torch.float64) + jac_branch, atol=1e-8),
        "the Jacobian of the block should be I + ∂F/∂x. Is the output exactly shortcut(x) + branch(x), "
        "with nothing (such as a ReLU) applied after the sum?",
    )
    _zero_branch(same)
    out = as_tensor(_run(same, x), "the block's output")
    require(
        torch.allclose(out, x, atol=1e-12),
        "with every parameter of `branch` set to zero, the block should return its input unchanged.",
    )
    diff = _module(make_block, 6, 3)
    n_proj = sum(p.numel() for p in diff.shortcut.parameters())
    require(
        n_proj > 0,
        "when the shapes differ the shortcut should be a learned projection, e.g. "
        "nn.Linear(6, 3, bias=False).",
    )
    _zero_branch(diff)
    out = as_tensor(_run(diff, x), "the block's output")
    expected = as_tensor(call(diff.shortcut, x), "shortcut(x)")
    require(
        torch.allclose(out, expected, atol=1e-12),
        "with the branch zeroed the block should return shortcut(x): add the branch to the shortcut, "
        "do not pass the sum through anything else.",
    )


def _reference_svals(blocks: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(end_to_end_jacobian(blocks, x))


@exercise("The end-to-end Jacobian spectrum")
def end_to_end_singular_values(fn: Callable[[list[nn.Module], torch.Tensor], torch.Tensor]) -> None:
    """Check ``fn(blocks, x)`` returns the singular values of ∂h_L/∂h_0, largest first."""
    for seed, n_blocks in ((0, 3), (1, 5)):
        blocks = make_blocks(n_blocks, width=6, seed=seed)
        x = torch.randn(6, dtype=torch.float64)
        expected = _reference_svals(blocks, x)
        got = as_tensor(call(fn, blocks, x.clone()), "the singular values").flatten()
        require(
            got.numel() == expected.numel(),
            f"for width-6 blocks expect 6 singular values, got {got.numel()}.",
        )
        if torch.allclose(got.flip(0), expected, rtol=1e-6, atol=1e-9) and not torch.allclose(got, expected):
            raise Incorrect("the values are right but in increasing order: return them largest first.")
        branch_only = torch.linalg.svdvals(_branch_product(blocks, x))
        if torch.allclose(got, branch_only, rtol=1e-6, atol=1e-9):
            raise Incorrect(
                "these are the singular values of J_L ⋯ J_1, the branches alone. Each block's Jacobian is "
                "I + J_l: differentiate the whole block, shortcut included."
            )
        require(
            torch.allclose(got, expected, rtol=1e-6, atol=1e-9),
            f"with {n_blocks} blocks the largest singular value is {expected[0].item():.4g} and the smallest "
            f"{expected[-1].item():.4g}; you returned {got[0].item():.4g} … {got[-1].item():.4g}. Multiply "
            "the Jacobians of all blocks (later blocks on the left), or differentiate the whole stack.",
        )


def _branch_product(blocks: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    h = x
    product = torch.eye(x.numel(), dtype=x.dtype)
    for block in blocks:
        product = input_jacobian(block.branch, h) @ product
        with torch.no_grad():
            h = block(h.unsqueeze(0)).squeeze(0)
    return product


def _backward_case(seed: int, width: int = 5) -> tuple[torch.Tensor, ...]:
    gen = runtime.generator(seed)
    g, x, b1, b2 = (torch.randn(width, generator=gen, dtype=torch.float64) for _ in range(4))
    w1, w2 = (torch.randn(width, width, generator=gen, dtype=torch.float64) / width**0.5 for _ in range(2))
    return g, x, w1, b1, w2, b2


def _autograd_input_grad(g, x, w1, b1, w2, b2):
    x = x.clone().requires_grad_(True)
    h = x + w2 @ torch.relu(w1 @ x + b1) + b2
    h.backward(g)
    return x.grad


@exercise("Backpropagating through a residual block by hand")
def residual_backward(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``fn(g, x, W1, b1, W2, b2)`` returns ∂𝓛/∂x for h = x + W2 relu(W1 x + b1) + b2, g = ∂𝓛/∂h."""
    for seed in range(3):
        case = _backward_case(seed)
        g, x, w1, b1, w2, _ = case
        expected = _autograd_input_grad(*case)
        got = as_tensor(call(fn, *(t.clone() for t in case)), "∂𝓛/∂x").flatten()
        require(
            got.numel() == x.numel(), f"∂𝓛/∂x should have {x.numel()} entries, like x; got {got.numel()}."
        )
        if torch.allclose(got, expected - g, atol=1e-9):
            raise Incorrect(
                "you returned only the branch's contribution. The shortcut passes g back unchanged: add g."
            )
        mask = (w1 @ x + b1 > 0).double()
        no_mask = g + w1.T @ (w2.T @ g)
        if torch.allclose(got, no_mask, atol=1e-9) and not torch.allclose(mask, torch.ones_like(mask)):
            raise Incorrect("the ReLU's derivative is missing: multiply by the mask 1[W1 x + b1 > 0].")
        require(
            torch.allclose(got, expected, atol=1e-9),
            "∂𝓛/∂x = g + W1ᵀ (mask ⊙ (W2ᵀ g)) with mask = 1[W1 x + b1 > 0]; compare your result with "
            "autograd on a small example. (Check the transposes.)",
        )
