"""Wrong answers to chapter 2's exercises: the projection block, the end-to-end spectrum, the hand-written
backward pass of a residual block."""

from __future__ import annotations

import torch
from skipflow import jacobians
from skipflow.checks.ch2 import _autograd_input_grad, _backward_case
from torch import nn

from wrong_answers import Entry, Wrong

# --- projection_block -------------------------------------------------------------------------------


class Block(nn.Module):
    """The reference block, with switches for the plausible mistakes."""

    def __init__(self, n_in, n_out, *, branch=None, shortcut=None, after=None):
        super().__init__()
        self.branch = branch or nn.Sequential(nn.Linear(n_in, n_out), nn.ReLU(), nn.Linear(n_out, n_out))
        if shortcut is None:
            shortcut = nn.Identity() if n_in == n_out else nn.Linear(n_in, n_out, bias=False)
        self.shortcut = shortcut
        self.after = after

    def forward(self, x):
        out = self.shortcut(x) + self.branch(x)
        return self.after(out) if self.after is not None else out


def reference_block(n_in, n_out):
    return Block(n_in, n_out)


class PadShortcut(nn.Module):
    """Zero-pads (or truncates) the features: parameter-free, like option A, but not what is asked."""

    def __init__(self, n_out):
        super().__init__()
        self.n_out = n_out

    def forward(self, x):
        if x.shape[-1] >= self.n_out:
            return x[..., : self.n_out]
        return nn.functional.pad(x, (0, self.n_out - x.shape[-1]))


PROJECTION = Entry(
    checker="projection_block",
    reference=reference_block,
    wrong=[
        Wrong(
            "hardcoded",
            "builds the branch for the input size the checker tries first (6)",
            lambda n_in, n_out: Block(6, n_out) if n_in != 6 else Block(n_in, n_out),
            "Build it from the arguments",
        ),
        Wrong(
            "mechanism",
            "a branch made of a single Linear",
            lambda n_in, n_out: Block(n_in, n_out, branch=nn.Sequential(nn.Linear(n_in, n_out))),
            "has 1 Linear layer",
        ),
        Wrong(
            "mechanism",
            "a branch without its nonlinearity (Linear → Linear)",
            lambda n_in, n_out: Block(
                n_in, n_out, branch=nn.Sequential(nn.Linear(n_in, n_out), nn.Linear(n_out, n_out))
            ),
            "no nonlinearity",
        ),
        Wrong(
            "mechanism",
            "a ReLU at the end of the branch",
            lambda n_in, n_out: Block(
                n_in,
                n_out,
                branch=nn.Sequential(nn.Linear(n_in, n_out), nn.ReLU(), nn.Linear(n_out, n_out), nn.ReLU()),
            ),
            "Linear → ReLU → Linear",
        ),
        Wrong(
            "mechanism",
            "a ReLU after the sum",
            lambda n_in, n_out: Block(n_in, n_out, after=nn.ReLU()),
            "after the sum",
        ),
        Wrong(
            "mechanism",
            "a projection even when the shapes match",
            lambda n_in, n_out: Block(n_in, n_out, shortcut=nn.Linear(n_in, n_out, bias=False)),
            "nn.Identity()",
        ),
        Wrong(
            "mechanism",
            "a parameter-free shortcut (zero-pad or truncate) when the shapes differ",
            lambda n_in, n_out: Block(n_in, n_out, shortcut=PadShortcut(n_out)),
            "learned projection",
        ),
        Wrong(
            "shape",
            "a branch whose last layer keeps the input width",
            lambda n_in, n_out: Block(
                n_in,
                n_out,
                branch=nn.Sequential(nn.Linear(n_in, n_in), nn.ReLU(), nn.Linear(n_in, n_out)),
            ),
            "the branch should be Linear",
        ),
        Wrong(
            "other",
            "returns the branch alone, with no shortcut",
            lambda n_in, n_out: nn.Sequential(nn.Linear(n_in, n_out), nn.ReLU(), nn.Linear(n_out, n_out)),
            "attribute `branch`",
        ),
    ],
    not_applicable={
        "off_by_one": "the block has no index or count to get wrong: its two sizes are the arguments, and "
        "a wrong size is the `shape` answer",
    },
)

# --- end_to_end_singular_values ----------------------------------------------------------------------


def _stack(blocks):
    def f(h):
        h = h.unsqueeze(0)
        for block in blocks:
            h = block(h)
        return h.squeeze(0)

    return f


def reference_svals(blocks, x):
    return torch.linalg.svdvals(torch.autograd.functional.jacobian(_stack(blocks), x))


def _first_case():
    blocks = jacobians.make_blocks(3, width=6, seed=0)
    from skipflow import runtime

    x = torch.randn(6, dtype=torch.float64, generator=runtime.generator(100))
    return reference_svals(blocks, x)


def at_input(blocks, x):
    out = torch.eye(x.numel(), dtype=x.dtype)
    for block in blocks:
        out = jacobians.input_jacobian(block, x) @ out
    return torch.linalg.svdvals(out)


def wrong_order(blocks, x):
    jacs = jacobians.block_jacobians(blocks, x)
    out = jacs[0]
    for jac in jacs[1:]:
        out = out @ jac
    return torch.linalg.svdvals(out)


SPECTRUM = Entry(
    checker="end_to_end_singular_values",
    reference=reference_svals,
    wrong=[
        Wrong("hardcoded", "the values of the first case", lambda blocks, x: _first_case(), "with 5 blocks"),
        Wrong(
            "mechanism",
            "the branches alone (J_L ⋯ J_1, no shortcut)",
            lambda blocks, x: reference_svals([b.branch for b in blocks], x),
            "branches alone",
        ),
        Wrong("mechanism", "every Jacobian taken at x", at_input, "its own input"),
        Wrong("mechanism", "the product in the wrong order", wrong_order, "wrong order"),
        Wrong(
            "off_by_one",
            "leaves out the last block",
            lambda blocks, x: reference_svals(blocks[:-1], x),
            "one too few",
        ),
        Wrong(
            "shape",
            "the Jacobian itself instead of its singular values",
            lambda blocks, x: torch.autograd.functional.jacobian(_stack(blocks), x),
            "expect 6 singular values",
        ),
        Wrong(
            "other",
            "smallest first",
            lambda blocks, x: reference_svals(blocks, x).flip(0),
            "largest first",
        ),
    ],
)

# --- residual_backward -------------------------------------------------------------------------------


def reference_backward(g, x, w1, b1, w2, b2):
    mask = (w1 @ x + b1 > 0).to(g.dtype)
    return g + w1.T @ (mask * (w2.T @ g))


BACKWARD = Entry(
    checker="residual_backward",
    reference=reference_backward,
    wrong=[
        Wrong(
            "hardcoded",
            "the answer of the first case",
            lambda *args: _autograd_input_grad(*_backward_case(0)),
            "compare your result with autograd",
        ),
        Wrong(
            "mechanism",
            "no shortcut term",
            lambda g, x, w1, b1, w2, b2: w1.T @ ((w1 @ x + b1 > 0).double() * (w2.T @ g)),
            "add g",
        ),
        Wrong(
            "mechanism",
            "no ReLU mask",
            lambda g, x, w1, b1, w2, b2: g + w1.T @ (w2.T @ g),
            "mask",
        ),
        Wrong(
            "mechanism",
            "the mask without the bias",
            lambda g, x, w1, b1, w2, b2: g + w1.T @ ((w1 @ x > 0).double() * (w2.T @ g)),
            "bias included",
        ),
        Wrong(
            "other",
            "no transposes",
            lambda g, x, w1, b1, w2, b2: g + w1 @ ((w1 @ x + b1 > 0).double() * (w2 @ g)),
            "transposes",
        ),
        Wrong(
            "off_by_one",
            "adds the shortcut's g twice",
            lambda g, x, w1, b1, w2, b2: g + reference_backward(g, x, w1, b1, w2, b2),
            "added twice",
        ),
        Wrong(
            "shape",
            "the Jacobian ∂h/∂x instead of the gradient",
            lambda g, x, w1, b1, w2, b2: (
                torch.eye(5, dtype=g.dtype) + w2 @ torch.diag((w1 @ x + b1 > 0).double()) @ w1
            ),
            "should be a vector with 5 entries",
        ),
    ],
)

CATALOGUE = [PROJECTION, SPECTRUM, BACKWARD]
