"""Beyond one residual stream: hyper-connection mixers and their Sinkhorn projection.

Hyper-connections (Zhu et al. 2024) widen the residual stream into n parallel streams and let every layer mix
them with an n × n matrix H. Over L layers the streams are multiplied by the product H_L ⋯ H_1, so an
unconstrained mixer can drift in gain with depth, as a plain network's layers do. mHC (DeepSeek, 2025)
projects each mixer onto the doubly stochastic matrices (non-negative, every row and column summing to one)
with the Sinkhorn–Knopp iteration. A product of doubly stochastic matrices is doubly stochastic, so its gain
stays exactly one at any depth.
"""

from __future__ import annotations

import torch

from skipflow import runtime
from skipflow._validate import check_float, check_int

__all__ = ["gain", "mixer_product", "sinkhorn", "sinkhorn_step", "stream_spread"]


def _check_square(name: str, m: object) -> torch.Tensor:
    if not isinstance(m, torch.Tensor):
        raise TypeError(f"`{name}` must be a tensor of shape (..., n, n), got {type(m).__name__}.")
    if m.dim() < 2 or m.shape[-1] != m.shape[-2]:
        raise ValueError(f"`{name}` must have shape (..., n, n), got shape {tuple(m.shape)}.")
    return m


def sinkhorn_step(m: torch.Tensor) -> torch.Tensor:
    """One Sinkhorn–Knopp step on a positive matrix: divide every row by its sum, then every column."""
    _check_square("m", m)
    m = m / m.sum(dim=-1, keepdim=True)
    return m / m.sum(dim=-2, keepdim=True)


def sinkhorn(logits: torch.Tensor, n_iters: int = 20, temperature: float = 1.0) -> torch.Tensor:
    """Project ``logits`` onto (nearly) doubly stochastic matrices: Sinkhorn–Knopp on exp(logits / τ).

    After the last step every column sums to one exactly and every row to one up to the iteration's error,
    which shrinks geometrically with ``n_iters``. A low temperature τ keeps the result close to a permutation
    (here, to the identity when the logits favour the diagonal); a high one pushes it toward the uniform
    matrix, which averages the streams.
    """
    _check_square("logits", logits)
    check_int("n_iters", n_iters, minimum=1)
    tau = check_float("temperature", temperature, minimum=0.0, strict_min=True)
    # subtracting the row maximum changes nothing after normalization but keeps exp() finite
    m = torch.exp((logits - logits.amax(dim=(-2, -1), keepdim=True)) / tau)
    for _ in range(n_iters):
        m = sinkhorn_step(m)
    return m


def gain(m: torch.Tensor) -> torch.Tensor:
    """The larger of the maximum absolute row sum and column sum (the ∞- and 1-norm of m).

    For a doubly stochastic matrix both are exactly one.
    """
    _check_square("m", m)
    rows = m.abs().sum(dim=-1).amax(dim=-1)
    cols = m.abs().sum(dim=-2).amax(dim=-1)
    return torch.maximum(rows, cols)


def mixer_product(
    n: int,
    depth: int,
    *,
    noise: float = 0.1,
    project: bool = False,
    temperature: float = 1.0,
    n_iters: int = 20,
    seed: int = 0,
    n_samples: int = 1,
) -> list[torch.Tensor]:
    """Products H_l ⋯ H_1 for l = 1 … depth of random near-identity mixers H = I + noise · N(0, 1).

    With ``project=True`` every mixer is replaced by ``sinkhorn(H, n_iters, temperature)``. Returns the
    ``depth`` partial products, each of shape (n_samples, n, n), in float64.
    """
    check_int("n", n, minimum=1)
    check_int("depth", depth, minimum=1)
    check_int("n_samples", n_samples, minimum=1)
    check_float("noise", noise, minimum=0.0)
    gen = runtime.generator(seed)
    eye = torch.eye(n, dtype=torch.float64)
    prod = eye.expand(n_samples, n, n)
    out = []
    for _ in range(depth):
        h = eye + noise * torch.randn(n_samples, n, n, generator=gen, dtype=torch.float64)
        if project:
            h = sinkhorn(h, n_iters=n_iters, temperature=temperature)
        prod = h @ prod
        out.append(prod)
    return out


def stream_spread(product: torch.Tensor) -> torch.Tensor:
    """How distinct the n streams still are after a mixer product: the rank residual of its rows.

    0 means every output stream is the same mixture of the inputs (the streams have become one average).
    """
    from skipflow.transformer import rank_residual

    _check_square("product", product)
    return rank_residual(product)
