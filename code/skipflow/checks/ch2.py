"""Checkers for chapter 2's exercises: a block with a projection shortcut, the end-to-end spectrum, and a
residual block's backward pass written by hand."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from skipflow import runtime
from skipflow.checks._core import Incorrect, as_tensor, call, exercise, require
from skipflow.jacobians import block_jacobians, end_to_end_jacobian, input_jacobian, make_blocks

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


def _branch_linears(block: nn.Module, n_in: int, n_out: int) -> tuple[nn.Linear, nn.Linear]:
    """The branch's two Linear layers, after checking there are exactly two with the asked-for shapes."""
    linears = [m for m in block.branch.modules() if isinstance(m, nn.Linear)]
    require(
        len(linears) == 2,
        f"for make_block({n_in}, {n_out}) the branch has {len(linears)} Linear layer(s); the exercise asks "
        "for exactly two: Linear(in, out) → ReLU → Linear(out, out).",
    )
    first, second = linears
    require(
        (first.in_features, first.out_features) == (n_in, n_out)
        and (second.in_features, second.out_features) == (n_out, n_out),
        f"for make_block({n_in}, {n_out}) the branch should be Linear({n_in}, {n_out}) → ReLU → "
        f"Linear({n_out}, {n_out}); yours has Linear({first.in_features}, {first.out_features}) and "
        f"Linear({second.in_features}, {second.out_features}). Build it from the arguments, not fixed sizes.",
    )
    return first, second


def _run(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return call(block, x)


def _zero_branch(block: nn.Module) -> None:
    with torch.no_grad():
        for p in block.branch.parameters():
            p.zero_()


def _check_projection_case(make_block: Callable, n_in: int, n_out: int, seed: int) -> None:
    gen = runtime.generator(seed)
    x = torch.randn(5, n_in, dtype=torch.float64, generator=gen)
    block = _module(make_block, n_in, n_out)
    first, second = _branch_linears(block, n_in, n_out)
    out = as_tensor(_run(block, x), "the block's output")
    require(
        tuple(out.shape) == (5, n_out),
        f"for make_block({n_in}, {n_out}) and a batch of shape (5, {n_in}) the output should have shape "
        f"(5, {n_out}), got {tuple(out.shape)}.",
    )
    with torch.no_grad():
        got = as_tensor(call(block.branch, x), "branch(x)")
        expected = second(torch.relu(first(x)))
    if not torch.allclose(got, expected, atol=1e-10):
        with torch.no_grad():
            affine = second(first(x))
        if got.shape == affine.shape and torch.allclose(got, affine, atol=1e-10):
            raise Incorrect(
                "the branch has no nonlinearity: it is Linear → Linear, which is just one linear map. "
                "Put an nn.ReLU() between the two Linear layers."
            )
        raise Incorrect(
            "the branch should compute Linear → ReLU → Linear, i.e. second(relu(first(x))), with nothing "
            "after the last Linear (the sum comes next)."
        )
    if n_in == n_out:
        require(
            sum(p.numel() for p in block.shortcut.parameters()) == 0,
            "when in_features == out_features the shortcut should be the identity (nn.Identity()), with no "
            "parameters: a projection is only needed when the shapes differ.",
        )
        x1 = torch.randn(n_in, dtype=torch.float64, generator=gen)
        jac = call(input_jacobian, block, x1)
        jac_branch = call(input_jacobian, block.branch, x1)
        require(
            torch.allclose(jac, torch.eye(n_in, dtype=torch.float64) + jac_branch, atol=1e-8),
            "the Jacobian of the block should be I + ∂F/∂x. Is the output exactly shortcut(x) + branch(x), "
            "with nothing (such as a ReLU) applied after the sum?",
        )
        _zero_branch(block)
        out = as_tensor(_run(block, x), "the block's output")
        require(
            torch.allclose(out, x, atol=1e-12),
            "with every parameter of `branch` set to zero, the block should return its input unchanged.",
        )
        return
    n_proj = sum(p.numel() for p in block.shortcut.parameters())
    require(
        n_proj > 0,
        f"when the shapes differ the shortcut should be a learned projection, e.g. "
        f"nn.Linear({n_in}, {n_out}, bias=False).",
    )
    _zero_branch(block)
    out = as_tensor(_run(block, x), "the block's output")
    expected = as_tensor(call(block.shortcut, x), "shortcut(x)")
    require(
        out.shape == expected.shape and torch.allclose(out, expected, atol=1e-12),
        "with the branch zeroed the block should return shortcut(x): add the branch to the shortcut, "
        "do not pass the sum through anything else.",
    )


@exercise("A residual block with a projection shortcut")
def projection_block(make_block: Callable[[int, int], nn.Module]) -> None:
    """Check ``make_block(in_features, out_features)`` on two same-shape and two shape-changing cases.

    For each case: the branch is Linear(in, out) → ReLU → Linear(out, out) (two Linear layers of those
    shapes, and branch(x) = second(relu(first(x)))); the output has the right shape; with equal shapes the
    shortcut is parameter-free, the Jacobian is I + ∂F/∂x and a zero branch gives x; with different shapes
    the shortcut is learned and a zero branch gives shortcut(x).
    """
    for seed, (n_in, n_out) in enumerate(((6, 6), (6, 3), (4, 4), (4, 7))):
        _check_projection_case(make_block, n_in, n_out, seed)


def _reference_svals(blocks: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(end_to_end_jacobian(blocks, x))


@exercise("The end-to-end Jacobian spectrum")
def end_to_end_singular_values(fn: Callable[[list[nn.Module], torch.Tensor], torch.Tensor]) -> None:
    """Check ``fn(blocks, x)`` returns the singular values of ∂h_L/∂h_0, largest first (two stacks)."""
    for seed, n_blocks, init in ((0, 3, "default"), (1, 5, "kaiming")):
        blocks = make_blocks(n_blocks, width=6, init=init, seed=seed)
        x = torch.randn(6, dtype=torch.float64, generator=runtime.generator(100 + seed))
        expected = _reference_svals(blocks, x)
        got = as_tensor(call(fn, blocks, x.clone()), "the singular values").flatten()
        require(
            got.numel() == expected.numel(),
            f"for width-6 blocks expect 6 singular values (a 1-D tensor), got {got.numel()} numbers.",
        )

        def same(values: torch.Tensor, got: torch.Tensor = got) -> bool:
            return torch.allclose(got, values, rtol=1e-6, atol=1e-9)

        if same(expected):
            continue
        if same(expected.flip(0)):
            raise Incorrect("the values are right but in increasing order: return them largest first.")
        branches = [block.branch for block in blocks]
        if same(torch.linalg.svdvals(_branch_product(blocks, x))) or same(_reference_svals(branches, x)):
            raise Incorrect(
                "these are the singular values of J_L ⋯ J_1, the branches alone. Each block's Jacobian is "
                "I + J_l: differentiate the whole block, shortcut included."
            )
        jacs = block_jacobians(blocks, x)
        if same(torch.linalg.svdvals(_product(jacs[::-1]))):
            raise Incorrect(
                "the block Jacobians are multiplied in the wrong order: ∂h_L/∂h_0 = (I + J_L) ⋯ (I + J_1), "
                "with later blocks on the left."
            )
        at_x = [input_jacobian(block, x) for block in blocks]
        if same(torch.linalg.svdvals(_product(at_x))):
            raise Incorrect(
                "every block's Jacobian was taken at the input x. Block l must be differentiated at its own "
                "input h_{l-1}, the output of the block before it."
            )
        without_last = _reference_svals(blocks[:-1], x)
        without_first = _reference_svals(blocks[1:], _forward(blocks[:1], x))
        if same(without_last) or same(without_first):
            raise Incorrect(
                f"these are the singular values of {n_blocks - 1} blocks, one too few: include every block "
                "of the list, the first and the last."
            )
        raise Incorrect(
            f"with {n_blocks} blocks the largest singular value is {expected[0].item():.4g} and the smallest "
            f"{expected[-1].item():.4g}; you returned {got[0].item():.4g} … {got[-1].item():.4g}. Multiply "
            "the Jacobians of all blocks (later blocks on the left), or differentiate the whole stack."
        )


def _product(jacobians: list[torch.Tensor]) -> torch.Tensor:
    """jacobians[-1] @ … @ jacobians[0]: the first in the list is applied first."""
    out = jacobians[0]
    for jac in jacobians[1:]:
        out = jac @ out
    return out


@torch.no_grad()
def _forward(blocks: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    h = x.unsqueeze(0)
    for block in blocks:
        h = block(h)
    return h.squeeze(0)


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
            got.numel() == x.numel(),
            f"∂𝓛/∂x should be a vector with {x.numel()} entries, like x; got {got.numel()} numbers.",
        )

        def same(values: torch.Tensor, got: torch.Tensor = got) -> bool:
            return torch.allclose(got, values, atol=1e-9)

        if same(expected):
            continue
        mask = (w1 @ x + b1 > 0).double()
        branch = expected - g
        if same(branch):
            raise Incorrect(
                "you returned only the branch's contribution. The shortcut passes g back unchanged: add g."
            )
        if same(2 * g + branch):
            raise Incorrect("g is added twice: the shortcut contributes g once, the branch W1ᵀ (m ⊙ W2ᵀ g).")
        no_mask = g + w1.T @ (w2.T @ g)
        if same(no_mask) and not torch.allclose(mask, torch.ones_like(mask)):
            raise Incorrect("the ReLU's derivative is missing: multiply by the mask 1[W1 x + b1 > 0].")
        if same(g + w1.T @ ((w1 @ x > 0).double() * (w2.T @ g))):
            raise Incorrect("the mask must use the ReLU's input W1 x + b1, bias included.")
        if same(g + w1 @ (mask * (w2 @ g))):
            raise Incorrect("the transposes are missing: backwards through y = W x the gradient is Wᵀ g.")
        raise Incorrect(
            "∂𝓛/∂x = g + W1ᵀ (mask ⊙ (W2ᵀ g)) with mask = 1[W1 x + b1 > 0]; compare your result with "
            "autograd on a small example. (Check the transposes.)"
        )
