"""The unraveled view of a residual network: paths, their lengths, and the gradient each length carries.

A network of n residual blocks h_l = h_{l-1} + F_l(h_{l-1}) can be written as a sum over 2^n *paths*: at
each block a path either goes through the branch F_l or takes the identity shortcut (Veit et al., 2016).
The number of branches a path passes through is its *length* k, and C(n, k) paths have length k.

For the forward pass this expansion is exact only when the branches are linear. For the backward pass it is
always exact: the input gradient is g_L · Π_l (I + J_l), a product of the Jacobians at the forward pass, and
expanding that product sorts every term by the number of J_l factors it contains. Two ways to measure the
gradient that paths of length k carry are implemented here:

- :func:`sample_path_gradients`, Veit et al.'s method: sample paths of length k, backpropagate along each one
  alone, and average the gradient norms (a sum of norms, estimated by sampling);
- :func:`gradient_by_path_length`, an exact dynamic programme over path length with O(L²) vector-Jacobian
  products: a_k, the sum of the gradients of all paths of length k (a norm of a sum, computed exactly).

:func:`sampling_convergence` puts the two on equal terms: it estimates the same a_k by sampling and
measures the error against the exact values. :func:`signed_shares` turns a_k into shares of the gradient
that sum to 1, and :func:`weight_gradient_by_path_length` decomposes the gradient of each branch's weights,
the one training uses, in the same way.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib import colors as mcolors
from matplotlib import patches
from torch import nn

from skipflow import runtime
from skipflow._validate import check_choice, check_float, check_int
from skipflow.blocks import ResidualBlock
from skipflow.plots import COLORS
from skipflow.probes import default_loss

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# ---------------------------------------------------------------------------------------------------------
# Counting paths
# ---------------------------------------------------------------------------------------------------------


def count_paths(n_blocks: int, length: int | None = None) -> int:
    """The number of paths through ``n_blocks`` residual blocks: 2^n, or C(n, k) of a given ``length`` k."""
    check_int("n_blocks", n_blocks, minimum=0)
    if length is None:
        return 2**n_blocks
    check_int("length", length, minimum=0)
    return math.comb(n_blocks, length)  # 0 when length > n_blocks


def path_length_distribution(n_blocks: int) -> torch.Tensor:
    """The share of paths of each length k = 0…n, C(n, k) / 2^n, as a float64 tensor of length n + 1."""
    check_int("n_blocks", n_blocks, minimum=0)
    counts = [math.comb(n_blocks, k) for k in range(n_blocks + 1)]
    return torch.tensor(counts, dtype=torch.float64) / 2**n_blocks


def fraction_of_paths(n_blocks: int, lo: int, hi: int) -> float:
    """The exact share of the 2^n paths whose length k satisfies lo ≤ k ≤ hi (integer arithmetic)."""
    check_int("n_blocks", n_blocks, minimum=0)
    check_int("lo", lo, minimum=0)
    check_int("hi", hi, minimum=0)
    if lo > hi:
        raise ValueError(f"`lo` ({lo}) must not exceed `hi` ({hi}); swap them.")
    inside = sum(math.comb(n_blocks, k) for k in range(lo, min(hi, n_blocks) + 1))
    return inside / 2**n_blocks


def enumerate_paths(n_blocks: int) -> list[tuple[int, ...]]:
    """Every path as the sorted tuple of the blocks (0-based) whose branch it enters, shortest first."""
    check_int("n_blocks", n_blocks, minimum=0)
    return [c for k in range(n_blocks + 1) for c in itertools.combinations(range(n_blocks), k)]


# ---------------------------------------------------------------------------------------------------------
# The forward expansion
# ---------------------------------------------------------------------------------------------------------


def path_output(
    branches: Sequence[Callable[[torch.Tensor], torch.Tensor]], path: Sequence[int], x: torch.Tensor
):
    """The output of one path: the branches listed in ``path`` applied to ``x`` in order, others skipped."""
    out = x
    for i in sorted(path):
        if not 0 <= i < len(branches):
            raise ValueError(f"`path` names block {i}, but there are only {len(branches)} branches.")
        out = branches[i](out)
    return out


def residual_forward(branches: Sequence[Callable[[torch.Tensor], torch.Tensor]], x: torch.Tensor):
    """The residual network itself: h_l = h_{l-1} + F_l(h_{l-1}) for each branch in turn."""
    h = x
    for branch in branches:
        h = h + branch(h)
    return h


def unrolled_sum(branches: Sequence[Callable[[torch.Tensor], torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
    """The sum of the 2^n path outputs. It equals :func:`residual_forward` when every branch is linear."""
    if len(branches) > 12:
        raise ValueError(f"`branches` has {len(branches)} entries: 2^n paths is too many; use at most 12.")
    return sum(path_output(branches, p, x) for p in enumerate_paths(len(branches)))


def branch_jacobians(
    branches: Sequence[Callable[[torch.Tensor], torch.Tensor]], x: torch.Tensor
) -> list[torch.Tensor]:
    """J_l = ∂F_l/∂h_{l-1} of each branch at the residual network's forward pass, for one 1-D input ``x``."""
    if not isinstance(x, torch.Tensor) or x.dim() != 1:
        raise ValueError("`x` must be a 1-D tensor (one example); use x[0] for the first row of a batch.")
    jacs, h = [], x
    for branch in branches:
        jacs.append(torch.autograd.functional.jacobian(branch, h))
        h = h + branch(h)
    return jacs


def path_jacobian(jacobians: Sequence[torch.Tensor], path: Sequence[int]) -> torch.Tensor:
    """The Jacobian of one path, J_{s_m} ⋯ J_{s_1} for the blocks s_1 < … < s_m it enters (I for none)."""
    if len(jacobians) == 0:
        raise ValueError("`jacobians` must hold at least one matrix (see branch_jacobians).")
    out = torch.eye(jacobians[0].shape[1], dtype=jacobians[0].dtype)
    for i in sorted(path):
        if not 0 <= i < len(jacobians):
            raise ValueError(f"`path` names block {i}, but there are only {len(jacobians)} Jacobians.")
        out = jacobians[i] @ out
    return out


# ---------------------------------------------------------------------------------------------------------
# The exact decomposition of the gradient by path length
# ---------------------------------------------------------------------------------------------------------


def recursion_step(
    a: Sequence[torch.Tensor], branch_vjp: Callable[[torch.Tensor], torch.Tensor]
) -> list[torch.Tensor]:
    """One block of the path-length recursion, for a block h_out = h_in + F(h_in).

    ``a[k]`` is the gradient that paths of length k carry at h_out; the result holds it at h_in. A path
    either skips the block (its length stays k) or enters F (its length grows by one), so

        new[k] = a[k] + VJP_F(a[k-1]),

    with a[-1] = 0 and a[len(a)] = 0: the list grows by one entry. (Updating a fixed array *in place* gives
    the same result if k runs from high to low, so that a[k-1] is still the old value when it is read.)
    """
    if len(a) == 0:
        raise ValueError("`a` must hold at least a_0 (the gradient arriving at the block's output).")
    through = [branch_vjp(v) for v in a]
    return [a[0]] + [a[k] + through[k - 1] for k in range(1, len(a))] + [through[-1]]


def _check_blocks(model: nn.Module) -> list[ResidualBlock]:
    if not (hasattr(model, "stem") and hasattr(model, "blocks") and hasattr(model, "head")):
        raise TypeError("`model` must be a skipflow.models.Net (it needs `.stem`, `.blocks` and `.head`).")
    blocks = list(model.blocks)
    for i, block in enumerate(blocks):
        if not isinstance(block, ResidualBlock):
            raise TypeError(
                f"`model.blocks[{i}]` is a {type(block).__name__}: paths need residual blocks "
                "(a plain network has exactly one path)."
            )
        if not isinstance(block.shortcut, nn.Identity):
            raise ValueError(
                f"`model.blocks[{i}]` has a non-identity shortcut; the path view here needs identity."
            )
    return blocks


@dataclass
class _Linearized:
    """The model's forward pass, linearized: one VJP function per piece, and the gradient at h_L."""

    stem_vjp: Callable
    after_vjps: list[Callable]
    branch_vjps: list[Callable]
    alphas: list[torch.Tensor]
    g_out: torch.Tensor  # ∂𝓛/∂h_L


class _ChainVJP:
    """The VJP of a chain of Linear, eval-mode BatchNorm1d, ReLU and Identity layers at one input, written
    out: each layer's VJP is a matrix product (Linear) or an elementwise factor (BatchNorm's scale, ReLU's
    mask), so a stack of cotangents (paths × the output's shape) is handled by broadcasting, with the same
    arithmetic autograd's VJP does, and without ``vmap``, which was about 30 times slower on chapter 3's
    blocks (125 cotangents of a 64 × 64 batch: 0.13 s against 0.004 s, mostly BatchNorm's batched backward
    and the copies vmap makes)."""

    def __init__(self, factors: list[tuple[str, torch.Tensor]]) -> None:
        self.factors = factors

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        for kind, t in reversed(self.factors):
            v = v @ t if kind == "mat" else v * t
        return v


def _chain_vjp(module: nn.Module, h: torch.Tensor) -> tuple[torch.Tensor, _ChainVJP] | None:
    """``(module(h), its VJP)`` as a :class:`_ChainVJP`, or None if ``module`` is not such a chain."""
    factors: list[tuple[str, torch.Tensor]] = []

    def walk(m: nn.Module, h: torch.Tensor) -> torch.Tensor | None:
        if isinstance(m, nn.Sequential):
            for part in m:
                h = walk(part, h)
                if h is None:
                    return None
            return h
        if isinstance(m, nn.Identity):
            return h
        if isinstance(m, nn.Linear):
            factors.append(("mat", m.weight.detach()))
        elif type(m) is nn.ReLU:
            out = m(h)
            factors.append(("diag", (out > 0).to(h.dtype)))
            return out
        elif isinstance(m, nn.BatchNorm1d) and not m.training and m.running_var is not None:
            scale = torch.rsqrt(m.running_var + m.eps)
            factors.append(("diag", scale * m.weight.detach() if m.weight is not None else scale))
        else:
            return None
        return m(h)

    if h.dim() != 2:
        return None
    out = walk(module, h)
    return None if out is None else (out, _ChainVJP(factors))


def _tail_gradient(model: nn.Module, h_last: torch.Tensor, y: torch.Tensor, loss_fn: LossFn | None):
    """∂𝓛/∂h_L through ``final`` and the head, by autograd (``torch.func.grad`` would import PyTorch's
    compiler stack on its first call, seconds of CPU time for one gradient)."""
    with torch.enable_grad():
        h = h_last.detach().requires_grad_(True)
        (g,) = torch.autograd.grad((loss_fn or default_loss)(model.head(model.final(h)), y), h)
    return g.detach()


class _ChainParamVJP:
    """Like :class:`_ChainVJP`, but also the gradient of the chain's parameters: called on a stack of
    cotangents v (paths × the output's shape) it returns ``(parameter gradients, input cotangents)``, the
    parameter gradients of each path flattened and concatenated in ``named_parameters`` order."""

    def __init__(self, steps: list[tuple[str, Any]]) -> None:
        self.steps = steps

    def __call__(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grads: list[list[torch.Tensor]] = []
        for kind, data in reversed(self.steps):
            if kind == "linear":  # y = h Wᵀ + b: ∂W = Σ_batch vᵀ h, ∂b = Σ_batch v, ∂h = v W
                inp, weight, has_bias = data
                grads.append(
                    [torch.einsum("pbo,bi->poi", v, inp).flatten(1)] + ([v.sum(1)] if has_bias else [])
                )
                v = v @ weight
            elif kind == "batchnorm":  # eval mode: y = x̂ w + b with x̂ from the running statistics
                x_hat, scale, affine = data
                if affine:
                    grads.append([(v * x_hat).sum(1), v.sum(1)])
                v = v * scale
            else:  # ReLU: its mask
                v = v * data
        return torch.cat([t for layer in reversed(grads) for t in layer], dim=1), v


def _chain_param_vjp(module: nn.Module, h: torch.Tensor) -> tuple[torch.Tensor, _ChainParamVJP] | None:
    """``(module(h), its parameter-and-input VJP)`` for a chain of Linear, eval-mode BatchNorm1d, ReLU and
    Identity layers, or None for anything else (the caller then uses ``torch.func``)."""
    steps: list[tuple[str, Any]] = []

    def walk(m: nn.Module, h: torch.Tensor) -> torch.Tensor | None:
        if isinstance(m, nn.Sequential):
            for part in m:
                h = walk(part, h)
                if h is None:
                    return None
            return h
        if isinstance(m, nn.Identity):
            return h
        if isinstance(m, nn.Linear):
            steps.append(("linear", (h, m.weight.detach(), m.bias is not None)))
        elif type(m) is nn.ReLU:
            out = m(h)
            steps.append(("relu", (out > 0).to(h.dtype)))
            return out
        elif isinstance(m, nn.BatchNorm1d) and not m.training and m.running_var is not None:
            inv = torch.rsqrt(m.running_var + m.eps)
            affine = m.weight is not None and m.bias is not None
            scale = inv * m.weight.detach() if affine else inv
            steps.append(("batchnorm", ((h - m.running_mean) * inv, scale, affine)))
        else:
            return None
        return m(h)

    if h.dim() != 2:
        return None
    out = walk(module, h)
    return None if out is None else (out, _ChainParamVJP(steps))


def _linearize(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn | None) -> _Linearized:
    from torch.func import vjp

    def linearized(module: nn.Module, h: torch.Tensor) -> tuple[torch.Tensor, Callable]:
        return _chain_vjp(module, h) or vjp(module, h)

    blocks = _check_blocks(model)
    h, stem_vjp = linearized(model.stem, x)
    after_vjps, branch_vjps, alphas = [], [], []
    for block in blocks:
        f, branch_vjp = linearized(block.branch, h)
        h, after_vjp = linearized(block.after, h + block.alpha * f)
        after_vjps.append(after_vjp)
        branch_vjps.append(branch_vjp)
        alphas.append(block.alpha.detach())

    return _Linearized(stem_vjp, after_vjps, branch_vjps, alphas, _tail_gradient(model, h, y, loss_fn))


def _batched(vjp_fn: Callable, v: torch.Tensor) -> torch.Tensor:
    """Apply a VJP function to each row of ``v`` (a stack of cotangents) in one vectorized call."""
    from torch.func import vmap

    if v.shape[0] == 0:
        return v
    if isinstance(vjp_fn, _ChainVJP):  # broadcasts over the leading axis by itself
        return vjp_fn(v)
    return vmap(lambda c: vjp_fn(c)[0])(v)


def _check_inputs(model: object, x: object, y: object, at: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("`x` and `y` must be tensors (a batch of inputs and their targets).")
    if len(x) != len(y):
        raise ValueError(f"`x` has {len(x)} rows but `y` has {len(y)}; they must match.")
    check_choice("at", at, ("input", "stream"))


class _EvalMode:
    """Put a model in eval mode for a ``with`` block and restore its mode afterwards."""

    def __init__(self, model: nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self) -> nn.Module:
        self.model.eval()
        return self.model

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)


def gradient_by_path_length(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn | None = None,
    at: str = "input",
) -> torch.Tensor:
    """The exact decomposition a_0, …, a_L of the gradient of the loss by path length.

    ``a_k`` sums the gradients of all C(L, k) paths that pass through exactly k residual branches, so
    Σ_k a_k is autograd's gradient. It walks backwards through the blocks once, applying
    :func:`recursion_step` at each (an activation after the addition multiplies both terms by its mask):
    L(L+1)/2 vector-Jacobian products in all.

    Args:
        model: a :class:`skipflow.models.Net` of :class:`skipflow.blocks.ResidualBlock` with identity
            shortcuts. It is evaluated in eval mode (so BatchNorm uses its running statistics and each
            example is independent of the others); its mode is restored afterwards.
        x, y: a batch of inputs and targets; the loss is the batch mean, as in training.
        loss_fn: defaults to cross-entropy for class labels, MSE otherwise.
        at: ``"input"`` for ∂𝓛/∂x, ``"stream"`` for ∂𝓛/∂h_0 (the stem's output, before the first block).

    Returns:
        A tensor of shape (L + 1, *x.shape) (or of h_0's shape for ``at="stream"``); row k is a_k.
    """
    _check_inputs(model, x, y, at)
    with _EvalMode(model), torch.no_grad():  # torch.func's vjp still differentiates inside no_grad
        lin = _linearize(model, x, y, loss_fn)
        a = lin.g_out.unsqueeze(0)  # only the empty path (k = 0) at h_L
        for after_vjp, branch_vjp, alpha in zip(
            reversed(lin.after_vjps), reversed(lin.branch_vjps), reversed(lin.alphas), strict=True
        ):
            a = _batched(after_vjp, a)  # the mask of a post-activation multiplies every length
            through = alpha * _batched(branch_vjp, a)  # entering F lengthens each path by one
            zero = torch.zeros_like(a[:1])
            a = torch.cat([a, zero]) + torch.cat([zero, through])
        if at == "input":
            a = _batched(lin.stem_vjp, a)
    return a.detach()


def autograd_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn | None = None, at: str = "input"
) -> torch.Tensor:
    """Autograd's ∂𝓛/∂x (or ∂𝓛/∂h_0 for ``at="stream"``) in eval mode: the reference for Σ_k a_k."""
    _check_inputs(model, x, y, at)
    with _EvalMode(model):
        x = x.detach().clone().requires_grad_(True)
        h0 = model.stem(x)
        h = h0
        for block in model.blocks:
            h = block(h)
        loss = (loss_fn or default_loss)(model.head(model.final(h)), y)
        (g,) = torch.autograd.grad(loss, x if at == "input" else h0)
    return g.detach()


# ---------------------------------------------------------------------------------------------------------
# Veit et al.'s sampling method
# ---------------------------------------------------------------------------------------------------------


@dataclass
class PathProfile:
    """The gradient carried by paths of each length k = 0…L, measured by one method.

    - ``per_path[k]``: the typical gradient norm of *one* path of length k;
    - ``total[k]``: the contribution of all C(L, k) paths of length k together;
    - ``method``: ``"sampled"`` (Veit et al.: per_path is the mean norm, total = C(L, k)·per_path, a sum of
      norms) or ``"exact"`` (total = ‖a_k‖, a norm of a sum; per_path = ‖a_k‖ / C(L, k));
    - ``exact_k``: for the sampled method, True where all C(L, k) paths were enumerated instead of sampled;
    - ``estimate``: for the sampled method, C(L, k)·(mean of the sampled path gradients), an unbiased but
      noisy estimate of the vector a_k.
    """

    per_path: torch.Tensor
    total: torch.Tensor
    method: str
    exact_k: torch.Tensor | None = None
    estimate: torch.Tensor | None = None

    @property
    def lengths(self) -> torch.Tensor:
        """The path lengths 0…L."""
        return torch.arange(len(self.total))


def exact_profile(a: torch.Tensor) -> PathProfile:
    """A :class:`PathProfile` from the exact decomposition ``a`` of :func:`gradient_by_path_length`."""
    if not isinstance(a, torch.Tensor) or a.dim() < 2:
        raise ValueError("`a` must be the (L + 1, ...) tensor returned by gradient_by_path_length.")
    n = len(a) - 1
    total = a.flatten(1).norm(dim=1).double().cpu()
    counts = torch.tensor([math.comb(n, k) for k in range(n + 1)], dtype=torch.float64)
    return PathProfile(per_path=total / counts, total=total, method="exact")


def _sample_subsets(n: int, k: int, samples: int, generator: torch.Generator) -> tuple[torch.Tensor, bool]:
    """Membership masks (rows × n) of length-k paths: all of them if there are at most ``samples``."""
    if math.comb(n, k) <= samples:
        rows = list(itertools.combinations(range(n), k))
        mask = torch.zeros(len(rows), n, dtype=torch.bool)
        for r, combo in enumerate(rows):
            mask[r, list(combo)] = True
        return mask, True
    chosen = torch.rand(samples, n, generator=generator).argsort(dim=1)[:, :k]
    mask = torch.zeros(samples, n, dtype=torch.bool)
    mask.scatter_(1, chosen, True)
    return mask, False


def _single_path_gradients(lin: _Linearized, member: torch.Tensor, at: str) -> torch.Tensor:
    """The gradient of each single path: row r of ``member`` (paths × blocks, bool) names its branches.

    Each path is backpropagated alone, through the branch of its blocks and the shortcut of all others;
    the paths of one call are vectorized, but each still costs its own vector-Jacobian products.
    """
    member = member.to(lin.g_out.device)
    g = lin.g_out.expand(len(member), *lin.g_out.shape).clone()
    for block in reversed(range(len(lin.branch_vjps))):
        g = _batched(lin.after_vjps[block], g)
        inside = member[:, block]
        g[inside] = lin.alphas[block] * _batched(lin.branch_vjps[block], g[inside])
    if at == "input":
        g = _batched(lin.stem_vjp, g)
    return g


def sample_path_gradients(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    samples_per_k: int = 1000,
    seed: int = 0,
    loss_fn: LossFn | None = None,
    at: str = "input",
    chunk_size: int = 256,
) -> PathProfile:
    """Veit et al.'s measurement of the gradient carried by paths of each length k.

    For each k, draw ``samples_per_k`` random sets of k blocks (uniformly, with replacement; when C(L, k)
    is at most ``samples_per_k`` every path is taken once instead). Backpropagate the loss gradient along
    each path alone, through the branch of its k blocks and the shortcut of the others, and take the norm
    of the gradient that reaches the input. ``per_path`` is the mean of those norms and ``total`` multiplies
    it by C(L, k). Several paths are backpropagated at once (``chunk_size``) as one vectorized VJP per block;
    each still costs its own vector-Jacobian products. The model is evaluated in eval mode.
    """
    _check_inputs(model, x, y, at)
    check_int("samples_per_k", samples_per_k, minimum=1)
    check_int("seed", seed, minimum=0)
    check_int("chunk_size", chunk_size, minimum=1)
    generator = runtime.generator(seed)
    with _EvalMode(model), torch.no_grad():  # torch.func's vjp still differentiates inside no_grad
        lin = _linearize(model, x, y, loss_fn)
        n = len(lin.branch_vjps)
        per_path, exact_k, estimate = [], [], []
        for k in range(n + 1):
            mask, exact = _sample_subsets(n, k, samples_per_k, generator)
            norms: list[torch.Tensor] = []
            vec_sum: torch.Tensor | float = 0.0
            for start in range(0, len(mask), chunk_size):
                g = _single_path_gradients(lin, mask[start : start + chunk_size], at)
                norms.append(g.flatten(1).norm(dim=1))
                vec_sum = vec_sum + g.sum(0)
            norms_k = torch.cat(norms).double()
            per_path.append(norms_k.mean())
            exact_k.append(exact)
            estimate.append(vec_sum * (math.comb(n, k) / len(mask)))
    per_path_t = torch.stack(per_path).cpu()
    counts = torch.tensor([math.comb(n, k) for k in range(n + 1)], dtype=torch.float64)
    return PathProfile(
        per_path=per_path_t,
        total=per_path_t * counts,
        method="sampled",
        exact_k=torch.tensor(exact_k),
        estimate=torch.stack(estimate).detach(),
    )


def effective_lengths(total: torch.Tensor | Sequence[float], mass: float = 0.9) -> tuple[int, int]:
    """The shortest range [lo, hi] of path lengths that holds at least ``mass`` of Σ_k total[k].

    This is our reading of Veit et al.'s "effective paths": the lengths that carry most of the gradient.
    """
    check_float("mass", mass, minimum=0.0, maximum=1.0, strict_min=True)
    values = torch.as_tensor(total, dtype=torch.float64).flatten()
    if len(values) == 0 or bool((values < 0).any()) or not bool(torch.isfinite(values).all()):
        raise ValueError("`total` must be a non-empty sequence of finite, non-negative numbers.")
    target = mass * float(values.sum())
    csum = torch.cat([torch.zeros(1, dtype=torch.float64), values.cumsum(0)])
    best = (0, len(values) - 1)
    for lo in range(len(values)):
        for hi in range(lo, len(values)):
            if float(csum[hi + 1] - csum[lo]) >= target * (1 - 1e-12):
                if hi - lo < best[1] - best[0]:
                    best = (lo, hi)
                break
    return best


def signed_shares(a: torch.Tensor) -> torch.Tensor:
    """The signed share of the gradient that paths of each length deliver: c_k = ⟨a_k, g⟩ / ‖g‖².

    ``a`` is the decomposition of :func:`gradient_by_path_length` (row k is a_k) and g = Σ_k a_k is the
    gradient itself, so Σ_k c_k = 1 exactly. c_k is the length of a_k's projection onto g, as a fraction
    of ‖g‖: a negative c_k means the paths of length k, taken together, point against the total. Unlike
    ‖a_k‖ / Σ_j ‖a_j‖ (a sum of norms across lengths), the shares add up to the gradient that arrives.
    Returned as float64 on the CPU.
    """
    if not isinstance(a, torch.Tensor) or a.dim() < 2:
        raise ValueError("`a` must be the (L + 1, ...) tensor returned by gradient_by_path_length.")
    flat = a.detach().flatten(1).double().cpu()
    g = flat.sum(0)
    norm2 = float(g @ g)
    if norm2 == 0.0:
        raise ValueError("the gradient Σ_k a_k is zero, so shares of it are undefined.")
    return flat @ g / norm2


def shortest_share_range(shares: torch.Tensor | Sequence[float], mass: float = 0.9) -> tuple[int, int]:
    """The shortest range [lo, hi] of lengths whose signed shares add up to at least ``mass``.

    For signed shares (which may be negative and sum to 1) this is the reading of "most of the gradient
    comes from lengths lo to hi" that respects cancellation. Ties go to the shorter lengths.
    """
    check_float("mass", mass, minimum=0.0, maximum=1.0, strict_min=True)
    values = torch.as_tensor(shares, dtype=torch.float64).flatten()
    if len(values) == 0 or not bool(torch.isfinite(values).all()):
        raise ValueError("`shares` must be a non-empty sequence of finite numbers.")
    csum = torch.cat([torch.zeros(1, dtype=torch.float64), values.cumsum(0)])
    best: tuple[int, int] | None = None
    for lo in range(len(values)):
        for hi in range(lo, len(values)):
            if float(csum[hi + 1] - csum[lo]) >= mass - 1e-12:
                if best is None or hi - lo < best[1] - best[0]:
                    best = (lo, hi)
                break
    if best is None:
        raise ValueError(
            f"no range of lengths holds a share of {mass}; the shares sum to {float(csum[-1]):.3g}."
        )
    return best


@dataclass
class SamplingCurve:
    """How fast Veit et al.'s sampling estimates the exact decomposition a_k, on equal terms.

    For a budget of b paths per length, the estimate of a_k is C(L, k) × (mean of b sampled single-path
    gradients), unbiased for a_k; where C(L, k) ≤ b every path is enumerated once instead, which is exact.

    - ``budgets``: the numbers b of paths per length (int64);
    - ``seconds``: wall time to compute all estimates at budget b (sampling cost summed over lengths,
      plus one forward pass and linearization, as for the exact method);
    - ``errors``: (len(budgets), L + 1) relative errors ‖â_k − a_k‖ / ‖a_k‖;
    - ``total_error``: the relative error of the whole decomposition, ‖â − a‖ / ‖a‖ over all lengths;
    - ``gradient_error``: the relative error of Σ_k â_k against the gradient g = Σ_k a_k;
    - ``enumerated``: (len(budgets), L + 1) True where length k was enumerated rather than sampled;
    - ``sum_of_norms``: (len(budgets), L + 1) what Veit et al. plotted, C(L, k) × the mean *norm* of the
      same sampled path gradients (exact Σ_p ‖g_p‖ where enumerated): a different quantity from ‖a_k‖.
    """

    budgets: torch.Tensor
    seconds: torch.Tensor
    errors: torch.Tensor
    total_error: torch.Tensor
    gradient_error: torch.Tensor
    enumerated: torch.Tensor
    sum_of_norms: torch.Tensor

    def budget_for(self, tolerance: float = 0.1, lengths: Sequence[int] | None = None) -> int | None:
        """The smallest budget at which every length in ``lengths`` (default: the whole decomposition)
        is within ``tolerance``; None if no budget tried gets there."""
        for i, b in enumerate(self.budgets.tolist()):
            err = self.total_error[i] if lengths is None else self.errors[i, list(lengths)].max()
            if float(err) <= tolerance:
                return int(b)
        return None


def sampling_convergence(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    a: torch.Tensor,
    budgets: Sequence[int] = (10, 30, 100, 300, 1000),
    seed: int = 0,
    loss_fn: LossFn | None = None,
    at: str = "input",
    chunk_size: int = 250,
) -> SamplingCurve:
    """Estimate the exact a_k by sampling single paths, and measure the error against ``a`` per budget.

    This puts Veit et al.'s sampling on the same footing as :func:`gradient_by_path_length`: both
    estimate the same vectors a_k. Each length draws max(budgets) paths once (uniformly, with replacement)
    and the estimate at a smaller budget uses the first b of them, so the curve is one sampling run read at
    several points; wall time is measured per chunk and accumulated to each budget.
    """
    import time

    _check_inputs(model, x, y, at)
    budgets = sorted({check_int("budgets", int(b), minimum=1) for b in budgets})
    check_int("seed", seed, minimum=0)
    check_int("chunk_size", chunk_size, minimum=1)
    if not isinstance(a, torch.Tensor) or a.dim() < 2:
        raise ValueError("`a` must be the (L + 1, ...) tensor returned by gradient_by_path_length.")
    generator = runtime.generator(seed)
    start = time.perf_counter()
    with _EvalMode(model), torch.no_grad():
        lin = _linearize(model, x, y, loss_fn)
        setup = time.perf_counter() - start
        n = len(lin.branch_vjps)
        if len(a) != n + 1:
            raise ValueError(f"`a` has {len(a)} rows but the model has {n} blocks: expected {n + 1}.")
        nb = len(budgets)
        estimates = torch.zeros(nb, *a.shape, dtype=torch.float64)
        seconds = torch.full((nb,), setup, dtype=torch.float64)
        enumerated = torch.zeros(nb, n + 1, dtype=torch.bool)
        sum_of_norms = torch.zeros(nb, n + 1, dtype=torch.float64)
        for k in range(n + 1):
            count = math.comb(n, k)
            if count <= budgets[-1]:  # every budget ≥ count enumerates: exact, computed once
                tic = time.perf_counter()
                mask, _ = _sample_subsets(n, k, count, generator)
                total, norms = 0.0, 0.0
                for s in range(0, len(mask), chunk_size):
                    chunk = _single_path_gradients(lin, mask[s : s + chunk_size], at).double()
                    total = total + chunk.sum(0).cpu()
                    norms += float(chunk.flatten(1).norm(dim=1).sum())
                spent = time.perf_counter() - tic
                for i, b in enumerate(budgets):
                    if b >= count:
                        estimates[i, k], enumerated[i, k] = total, True
                        sum_of_norms[i, k] = norms
                        seconds[i] += spent
            sampled = [b for b in budgets if b < count]
            if not sampled:
                continue
            mask = torch.rand(sampled[-1], n, generator=generator).argsort(dim=1)[:, :k]
            member = torch.zeros(sampled[-1], n, dtype=torch.bool).scatter_(1, mask, True)
            running, norms, elapsed, done = 0.0, 0.0, 0.0, 0
            stops = iter(sampled)
            stop = next(stops)
            while stop is not None:
                step = min(chunk_size, stop - done)
                tic = time.perf_counter()
                chunk = _single_path_gradients(lin, member[done : done + step], at).double()
                running = running + chunk.sum(0).cpu()
                norms += float(chunk.flatten(1).norm(dim=1).sum())
                elapsed += time.perf_counter() - tic
                done += step
                if done == stop:
                    i = budgets.index(stop)
                    estimates[i, k] = running * (count / stop)
                    sum_of_norms[i, k] = norms * (count / stop)
                    seconds[i] += elapsed
                    stop = next(stops, None)
    exact = a.detach().double().cpu()
    diff = (estimates - exact).flatten(2)
    errors = diff.norm(dim=2) / exact.flatten(1).norm(dim=1).clamp_min(1e-300)
    total_error = diff.flatten(1).norm(dim=1) / exact.norm()
    g = exact.sum(0)
    gradient_error = (estimates.sum(1) - g).flatten(1).norm(dim=1) / g.norm()
    return SamplingCurve(
        budgets=torch.tensor(budgets),
        seconds=seconds,
        errors=errors,
        total_error=total_error,
        gradient_error=gradient_error,
        enumerated=enumerated,
        sum_of_norms=sum_of_norms,
    )


def weight_gradient_by_path_length(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn | None = None
) -> list[torch.Tensor]:
    """The gradient that each residual branch's weights receive, split by the length of the paths.

    The gradient of block l's branch parameters θ_l is g_l' · ∂(α F_l)/∂θ_l, where g_l' is the gradient
    arriving at block l's sum. g_l' is itself a sum over the paths through the blocks above l, so the same
    recursion as :func:`gradient_by_path_length` splits it: row k of the result for block l sums the
    paths that pass through k branches on the way from the loss down to θ_l, F_l's own included (so row 0
    is zero, and so are the rows beyond L − l + 1, for blocks numbered 1…L). Summing the rows gives
    autograd's weight gradient.

    Returns one tensor per block, of shape (L + 1, number of branch parameters), the parameters flattened
    and concatenated in ``named_parameters`` order. Evaluated in eval mode (as the input decomposition).
    """
    from torch.func import functional_call, vjp, vmap

    _check_inputs(model, x, y, "input")
    blocks = _check_blocks(model)
    n = len(blocks)
    with _EvalMode(model), torch.no_grad():
        h = model.stem(x)
        vjps, after_vjps, alphas, sizes = [], [], [], []
        for block in blocks:
            params = {k: v.detach() for k, v in block.branch.named_parameters()}
            chain = _chain_param_vjp(block.branch, h)  # written out where it can be (no vmap needed)
            if chain is not None:
                f, fn = chain
            else:
                f, fn = vjp(lambda p, v, b=block: functional_call(b.branch, p, (v,)), params, h)
            h, after_vjp = _chain_vjp(block.after, h + block.alpha * f) or vjp(
                block.after, h + block.alpha * f
            )
            vjps.append(fn)
            after_vjps.append(after_vjp)
            alphas.append(block.alpha.detach())
            sizes.append(sum(v.numel() for v in params.values()))

        a = _tail_gradient(model, h, y, loss_fn).unsqueeze(0)  # only the empty path at h_L
        out: list[torch.Tensor] = [torch.empty(0)] * n
        for i in reversed(range(n)):
            a = _batched(after_vjps[i], a)
            if isinstance(vjps[i], _ChainParamVJP):
                flat, through = vjps[i](a)
                flat = flat * alphas[i]
            else:
                pgrads, through = vmap(lambda c, fn=vjps[i]: fn(c))(a)
                flat = torch.cat([v.flatten(1) for v in pgrads.values()], dim=1) * alphas[i]
            rows = torch.zeros(n + 1, sizes[i], dtype=flat.dtype, device=flat.device)
            rows[1 : len(flat) + 1] = flat  # entering F_l makes each path one longer
            out[i] = rows.detach()
            through = alphas[i] * through
            zero = torch.zeros_like(a[:1])
            a = torch.cat([a, zero]) + torch.cat([zero, through])
    return out


def weight_shares(per_block: Sequence[torch.Tensor]) -> torch.Tensor:
    """Signed shares of the whole branch-weight gradient by path length: Σ_l ⟨G_{l,k}, G_l⟩ / Σ_l ‖G_l‖².

    ``per_block`` is the output of :func:`weight_gradient_by_path_length`; G_l is the sum of its rows.
    The shares sum to 1 exactly (float64, on the CPU).
    """
    if len(per_block) == 0:
        raise ValueError("`per_block` is empty: pass the list weight_gradient_by_path_length returns.")
    num = torch.zeros(per_block[0].shape[0], dtype=torch.float64)
    den = 0.0
    for rows in per_block:
        rows = rows.detach().double().cpu()
        total = rows.sum(0)
        num += rows @ total
        den += float(total @ total)
    if den == 0.0:
        raise ValueError("the weight gradient is zero, so shares of it are undefined.")
    return num / den


# ---------------------------------------------------------------------------------------------------------
# Drawing the unraveled view
# ---------------------------------------------------------------------------------------------------------


def draw_unraveled(n_blocks: int = 3, axes: Sequence[plt.Axes] | None = None) -> plt.Figure:
    """Draw a residual network of ``n_blocks`` blocks (top) and its 2^n paths, one per row (below).

    In the paths panel a box on a row means that path goes through that block's branch F_l; a straight
    segment means it takes the shortcut. Rows are sorted by length k and coloured by it. ``axes`` are the two
    axes to draw into (network, paths); by default they are stacked in a figure narrow enough for a phone.
    The panel does not say that the rows add up to the output: that holds only for linear branches.
    """
    check_int("n_blocks", n_blocks, minimum=1)
    if n_blocks > 5:
        raise ValueError(f"`n_blocks`={n_blocks}: 2^n rows are unreadable beyond 5 blocks; use 1 to 5.")
    if axes is None:
        fig, axes = plt.subplots(
            2, 1, figsize=(4.8, 2.6 + 0.42 * 2**n_blocks), height_ratios=[1, 0.3 * 2**n_blocks]
        )
    else:
        fig = axes[0].figure
    left, right = axes
    _draw_chain(left, n_blocks)
    _draw_paths(right, n_blocks)
    return fig


def _box(ax: plt.Axes, x: float, y: float, text: str, color: str, w: float = 0.55, h: float = 0.5) -> None:
    ax.add_patch(
        patches.FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02", fc=color, ec="k")
    )
    red, green, blue = mcolors.to_rgb(color)
    light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.55  # dark text on light fills
    ax.text(x, y, text, ha="center", va="center", fontsize=9, color="black" if light else "white")


def _draw_chain(ax: plt.Axes, n: int) -> None:
    xs = [1.5 * i for i in range(n + 1)]
    ax.plot([xs[0] - 0.6, xs[-1] + 0.6], [0, 0], color="k", lw=1.5, zorder=1)
    for i in range(n):
        mid = (xs[i] + xs[i + 1]) / 2
        ax.plot([xs[i], xs[i], mid - 0.3], [0, 0.9, 0.9], color=COLORS["residual"], lw=1.5)
        ax.plot([mid + 0.3, xs[i + 1], xs[i + 1]], [0.9, 0.9, 0.1], color=COLORS["residual"], lw=1.5)
        _box(ax, mid, 0.9, f"$F_{i + 1}$", COLORS["residual"])
        ax.add_patch(patches.Circle((xs[i + 1], 0), 0.12, fc="white", ec="k", zorder=3))
        ax.text(xs[i + 1], 0, "+", ha="center", va="center", fontsize=9, zorder=4)
        ax.text(mid, -0.35, "identity shortcut" if i == 0 else "", ha="center", va="top", fontsize=8)
    ax.text(xs[0] - 0.6, 0.15, "$h_0$", fontsize=10)
    ax.text(xs[-1] + 0.35, 0.15, f"$h_{n}$", fontsize=10)
    ax.set(xlim=(xs[0] - 0.8, xs[-1] + 0.9), ylim=(-1.0, 1.6), title=f"A residual network of {n} blocks")
    ax.set_aspect("equal")
    ax.axis("off")


def _draw_paths(ax: plt.Axes, n: int) -> None:
    cmap = plt.get_cmap("viridis")
    paths = enumerate_paths(n)
    for row, path in enumerate(paths):
        y = len(paths) - 1 - row
        color = cmap(len(path) / max(n, 1) * 0.85)
        ax.plot([0, n + 1], [y, y], color=color, lw=1.5, zorder=1)
        for i in range(n):
            if i in path:
                _box(ax, i + 1, y, f"$F_{i + 1}$", color, w=0.6, h=0.6)
        ax.text(n + 1.2, y, f"$k = {len(path)}$", va="center", fontsize=9)
    ax.text(0, len(paths) - 0.2, "input", ha="center", fontsize=9)
    ax.text(n + 1, len(paths) - 0.2, "output", ha="center", fontsize=9)
    ax.set(xlim=(-0.5, n + 2.0), ylim=(-0.7, len(paths) + 0.2))
    ax.set_title(f"Unraveled: {2**n} paths, one per row")
    ax.axis("off")
