"""Jacobians of residual blocks and of stacks of them (chapter 2).

A residual block h_l = h_{l-1} + F_l(h_{l-1}) has the Jacobian I + J_l, where J_l = ∂F_l/∂h_{l-1}. A stack of
L blocks has the end-to-end Jacobian ∂h_L/∂h_0 = (I + J_L) ⋯ (I + J_1), and the gradient that reaches the
input is g_0ᵀ = g_Lᵀ (I + J_L) ⋯ (I + J_1). This module measures these products on small random networks.

The random residual MLP used throughout is :class:`MLPBlock`: width ``width``, a branch of two Linear layers
with a ReLU between them, no normalization, and optionally a ReLU after the sum.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from skipflow import runtime
from skipflow._validate import check_choice, check_float, check_int

INITS = ("default", "kaiming")


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run PyTorch on one CPU thread inside the block, then restore the previous setting.

    The matrices here are 64×64: splitting such small products over threads costs more than it saves,
    and on a busy machine it can be a hundred times slower.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def input_jacobian(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """∂fn(x)/∂x for one 1-D input, with ``torch.autograd.functional.jacobian`` (vectorized).

    Like :func:`skipflow.probes.input_jacobian`, which it matches exactly, but it computes all rows of the
    Jacobian in one batched backward pass, which is many times faster for the 64-wide blocks here.
    """
    if not callable(fn):
        raise TypeError(f"`fn` must be callable, got {type(fn).__name__}.")
    x = _check_vector("x", x)
    return torch.autograd.functional.jacobian(lambda v: fn(v.unsqueeze(0)).squeeze(0), x, vectorize=True)


class MLPBlock(nn.Module):
    """``h + α F(h)`` (or ``relu(h + α F(h))`` with ``post_activation=True``), F = Linear → ReLU → Linear.

    ``branch_scale`` is the fixed factor α (1 by default), as in the 1/√L branch scalings of chapter 5.
    """

    def __init__(
        self, width: int, post_activation: bool = False, init: str = "default", branch_scale: float = 1.0
    ) -> None:
        super().__init__()
        check_int("width", width, minimum=1)
        check_choice("init", init, INITS)
        self.branch_scale = check_float("branch_scale", branch_scale)
        self.branch = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
        self.post_activation = bool(post_activation)
        if init == "kaiming":
            for layer in (self.branch[0], self.branch[2]):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        branch = self.branch(h)
        out = h + (branch if self.branch_scale == 1.0 else self.branch_scale * branch)
        return torch.relu(out) if self.post_activation else out

    @torch.no_grad()
    def jacobian(self, h: torch.Tensor) -> torch.Tensor:
        """∂(block)/∂h at one 1-D input, in closed form: D (I + α W2 diag(m) W1), m the hidden ReLU mask.

        D is the mask of the ReLU after the sum (the identity without ``post_activation``). The tests check
        it against ``torch.autograd.functional.jacobian``; it is only faster.
        """
        first, second = self.branch[0], self.branch[2]
        mask = (first(h) > 0).to(h.dtype)
        jac = torch.eye(h.numel(), dtype=h.dtype, device=h.device) + self.branch_scale * (
            second.weight * mask @ first.weight
        )
        if self.post_activation:
            jac = (self.forward(h) > 0).to(h.dtype).unsqueeze(1) * jac
        return jac


class PlainBlock(nn.Module):
    """The plain counterpart of :class:`MLPBlock`: Linear → ReLU → Linear → ReLU, no shortcut."""

    def __init__(self, width: int, init: str = "default") -> None:
        super().__init__()
        check_int("width", width, minimum=1)
        check_choice("init", init, INITS)
        self.layers = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        if init == "kaiming":
            for layer in (self.layers[0], self.layers[2]):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.layers(h)

    @torch.no_grad()
    def jacobian(self, h: torch.Tensor) -> torch.Tensor:
        """∂(block)/∂h at one 1-D input, in closed form: diag(m2) W2 diag(m1) W1 (m1, m2 the ReLU masks)."""
        first, second = self.layers[0], self.layers[2]
        pre1 = first(h)
        mask1 = (pre1 > 0).to(h.dtype)
        mask2 = (second(torch.relu(pre1)) > 0).to(h.dtype)
        return mask2.unsqueeze(1) * (second.weight * mask1) @ first.weight


def make_blocks(
    n_blocks: int,
    width: int = 64,
    kind: str = "residual",
    init: str = "default",
    seed: int = 0,
    branch_scale: float = 1.0,
) -> list[nn.Module]:
    """``n_blocks`` freshly initialized blocks, in eval mode, seeded by ``seed``.

    ``kind`` is ``"residual"`` (x + F(x)), ``"post"`` (relu(x + F(x))) or ``"plain"`` (no shortcut).
    ``branch_scale`` multiplies every residual branch (it must stay 1 for plain blocks).
    """
    check_int("n_blocks", n_blocks, minimum=1)
    check_int("seed", seed, minimum=0)
    check_choice("kind", kind, ("residual", "post", "plain"))
    runtime.manual_seed(seed)
    if kind == "plain":
        if branch_scale != 1.0:
            raise ValueError("`branch_scale` applies to residual branches; plain blocks have none.")
        blocks: list[nn.Module] = [PlainBlock(width, init) for _ in range(n_blocks)]
    else:
        blocks = [MLPBlock(width, kind == "post", init, branch_scale) for _ in range(n_blocks)]
    return [b.double().eval() for b in blocks]


def _check_blocks(blocks: object) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    if isinstance(blocks, nn.Module) or not isinstance(blocks, Sequence) or not blocks:
        raise TypeError("`blocks` must be a non-empty list of modules (or functions), applied in order.")
    if not all(callable(b) for b in blocks):
        raise TypeError("every entry of `blocks` must be callable.")
    return list(blocks)


def _check_vector(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 1:
        raise ValueError(
            f"`{name}` must be a 1-D tensor (one example); use x[0] for the first row of a batch."
        )
    return x


def block_jacobians(
    blocks: Sequence[Callable], x: torch.Tensor, method: str = "autograd"
) -> list[torch.Tensor]:
    """The Jacobian ∂h_l/∂h_{l-1} of every block at the forward pass that starts from ``x`` (1-D).

    ``method="autograd"`` uses :func:`input_jacobian`; ``"closed_form"`` calls each block's own
    ``jacobian(h)`` method (:class:`MLPBlock` and :class:`PlainBlock` have one), which is faster.
    """
    blocks = _check_blocks(blocks)
    check_choice("method", method, ("autograd", "closed_form"))
    if method == "closed_form" and not all(hasattr(b, "jacobian") for b in blocks):
        raise TypeError("`method`='closed_form' needs blocks with a .jacobian(h) method; use 'autograd'.")
    h = _check_vector("x", x).detach()
    jacobians = []
    for block in blocks:
        jacobians.append(input_jacobian(block, h) if method == "autograd" else block.jacobian(h))
        with torch.no_grad():
            h = block(h.unsqueeze(0)).squeeze(0)
    return jacobians


def cumulative_jacobians(
    blocks: Sequence[Callable], x: torch.Tensor, method: str = "autograd"
) -> list[torch.Tensor]:
    """∂h_l/∂h_0 for l = 1 … L: the products (I + J_l) ⋯ (I + J_1), built one block at a time."""
    out = []
    product: torch.Tensor | None = None
    for jac in block_jacobians(blocks, x, method):
        product = jac if product is None else jac @ product
        out.append(product)
    return out


def end_to_end_jacobian(blocks: Sequence[Callable], x: torch.Tensor) -> torch.Tensor:
    """∂h_L/∂h_0 of the whole stack, by autograd through all blocks at once."""
    blocks = _check_blocks(blocks)

    def stack(h: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            h = block(h)
        return h

    return input_jacobian(stack, _check_vector("x", x))


def spectra_vs_depth(
    n_blocks: int,
    width: int = 64,
    kind: str = "residual",
    init: str = "default",
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    branch_scale: float = 1.0,
) -> torch.Tensor:
    """Singular values of ∂h_l/∂h_0 for every depth l = 1 … n_blocks and every seed.

    Returns a float64 tensor of shape (len(seeds), n_blocks, width), largest singular value first. One
    network of ``n_blocks`` blocks per seed gives every depth at once: its first l blocks are a network of
    depth l. The input is a standard normal vector drawn after seeding. The block Jacobians are computed
    in closed form (``method="closed_form"``), which the tests check against autograd.
    """
    rows = []
    with single_thread():
        for seed in seeds:
            blocks = make_blocks(n_blocks, width, kind, init, seed, branch_scale)
            x = torch.randn(width, dtype=torch.float64)
            products = cumulative_jacobians(blocks, x, method="closed_form")
            rows.append(torch.linalg.svdvals(torch.stack(products)))
    return torch.stack(rows)


def predicted_rms_gain(n_blocks: int | torch.Tensor, init: str = "default", branch_scale: float = 1.0):
    """(1 + c)^{L/2}: the RMS singular value of ∂h_L/∂h_0 that independent random branches predict.

    For a row vector v and a block Jacobian I + J with J = α W₂ D W₁ (zero-mean W₂, independent of D and
    W₁), the cross term vanishes in expectation and E‖v(I + J)‖² = (1 + c)‖v‖², c = α² s⁴ / 2: each weight
    matrix multiplies the expected squared norm by s² (s² = 1/3 for PyTorch's default uniform init, whose
    variance is 1/(3·fan-in); s² = 2 for Kaiming), and the ReLU mask D keeps about half the units. So
    c = 1/18 for the default init and c = 2 for Kaiming, and over L independent blocks the expected squared
    gain is (1 + c)^L.
    """
    check_choice("init", init, INITS)
    s2 = 1.0 / 3.0 if init == "default" else 2.0
    c = check_float("branch_scale", branch_scale) ** 2 * s2 * s2 / 2
    return (1.0 + c) ** (torch.as_tensor(n_blocks, dtype=torch.float64) / 2)


def rms(singular_values: torch.Tensor) -> torch.Tensor:
    """The root mean square of singular values along the last axis.

    It is the typical gain of a gradient: for a random direction u, E‖uᵀP‖² / ‖u‖² = mean(σ_i²).
    """
    return singular_values.pow(2).mean(-1).sqrt()


def scaled_identity_product(scale: float, n_blocks: int, width: int = 4) -> torch.Tensor:
    """The end-to-end Jacobian of ``n_blocks`` blocks with F(x) = scale · x, measured by autograd.

    Each block's Jacobian is (1 + scale) I, so the product is (1 + scale)^n_blocks · I: with scale = −0.9 it
    is 0.1^n_blocks, and with scale = −1 it is exactly zero.
    """
    scale = check_float("scale", scale)
    check_int("n_blocks", n_blocks, minimum=1)
    blocks = [lambda h: h + scale * h for _ in range(n_blocks)]
    return end_to_end_jacobian(blocks, torch.ones(width, dtype=torch.float64))


def rank_one_block_jacobian(u: torch.Tensor) -> torch.Tensor:
    """The Jacobian of the block x ↦ x − u uᵀ x for a unit vector ``u``: I − u uᵀ, which is singular.

    A gradient along u is annihilated: (I − u uᵀ) u = 0.
    """
    u = _check_vector("u", u)
    if not torch.isclose(u.norm(), torch.ones((), dtype=u.dtype), atol=1e-6):
        raise ValueError("`u` must be a unit vector: pass u / u.norm().")
    return input_jacobian(lambda x: x - (x @ u).unsqueeze(-1) * u, torch.randn_like(u))


def backward_gains(
    blocks: Sequence[Callable], x: torch.Tensor, g: torch.Tensor, method: str = "autograd"
) -> torch.Tensor:
    """‖g_{l-1}‖ / ‖g_l‖ for every block, walking a gradient ``g`` = g_L back from the output.

    Returns the gains of blocks 1 … L (the first entry is the block nearest the input). A gain below 1
    means the block shrank the gradient. ``method`` is as in :func:`block_jacobians`.
    """
    g = _check_vector("g", g)
    with single_thread():
        jacobians = block_jacobians(blocks, x, method)
        gains = []
        for jac in reversed(jacobians):
            new = g @ jac
            gains.append(new.norm() / g.norm().clamp_min(1e-300))
            g = new
    return torch.stack(gains[::-1])


def post_activation_mask_fraction(blocks: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """For each block, the share of units where relu(h + F(h)) is zero, i.e. where the mask blocks g."""
    blocks = _check_blocks(blocks)
    h = _check_vector("x", x).detach()
    zeros = []
    with torch.no_grad():
        for block in blocks:
            pre = h + getattr(block, "branch_scale", 1.0) * block.branch(h)
            zeros.append((pre <= 0).double().mean())
            h = block(h)
    return torch.stack(zeros)
