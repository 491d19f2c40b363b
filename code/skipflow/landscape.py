"""Two-dimensional slices of the loss surface, after Li et al. (2018), on small MLPs (chapter 2).

Li et al. plot the training loss on a plane through trained weights θ*,

    f(a, b) = 𝓛(θ* + a δ + b η),

where δ and η are random directions that are *filter-normalized*: each row of a weight matrix (the weights
that feed one neuron, the fully connected analogue of a convolution filter) is rescaled to the norm of the
same row of θ*, and the directions are zero on biases and batch-norm parameters (the ``--xignore biasbn``
option of the authors' code). Without that rescaling, batch norm makes the loss invariant to the scale of
a layer's weights, and a slice would show the weights' scale rather than the shape of the loss.

The networks here are written as plain functions of a list of tensors so that a whole grid of weight
vectors is evaluated in one batched pass: a leading "grid" axis runs through every matrix product.
Batch norm always uses the statistics of the batch it is given (the whole training set), so the loss is a
deterministic function of the weights and no running statistics go stale when the weights move.

- ``kind="plain"``: a stem Linear → BN → ReLU, then ``n_blocks`` × (Linear → BN → ReLU → Linear → BN →
  ReLU), then a Linear head;
- ``kind="residual"``: the same layers, with an identity shortcut around each pair, in the original
  post-activation order h ← relu(h + BN(W₂ relu(BN(W₁ h)))).

Curvature: at every interior point of the grid, central differences give the 2×2 Hessian of f; its
eigenvalues λ_min ≤ λ_max are the principal curvatures of the slice. A point counts as non-convex when
λ_min < −``tolerance`` · |λ_max|.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from skipflow import optim, runtime
from skipflow._validate import check_choice, check_float, check_int
from skipflow.jacobians import single_thread

KINDS = ("plain", "residual")
EPS = 1e-5


@dataclass
class Slice:
    """A loss surface on a square grid: ``loss[i, j]`` = 𝓛(θ* + coords[i] δ + coords[j] η)."""

    coords: torch.Tensor  # (n,)
    loss: torch.Tensor  # (n, n)

    @property
    def step(self) -> float:
        """The grid spacing."""
        return float(self.coords[1] - self.coords[0])


def init_params(
    kind: str,
    n_blocks: int,
    width: int = 16,
    in_features: int = 64,
    n_classes: int = 10,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Fresh float64 parameters, in PyTorch's default initialization (weights and biases of nn.Linear).

    The list is [W, b, γ, β] for the stem, then the same four for every layer of every block, then [W, b]
    for the head. ``kind`` only names the network; plain and residual nets of the same ``n_blocks`` have
    the same parameters and, for the same ``seed``, the same initial values.
    """
    check_choice("kind", kind, KINDS)
    check_int("n_blocks", n_blocks, minimum=0)
    check_int("width", width, minimum=1)
    runtime.manual_seed(seed)
    params: list[torch.Tensor] = []
    sizes = [(in_features, width)] + [(width, width)] * (2 * n_blocks)
    for fan_in, fan_out in sizes:
        layer = nn.Linear(fan_in, fan_out, dtype=torch.float64)
        params += [layer.weight.detach(), layer.bias.detach()]
        params += [torch.ones(fan_out, dtype=torch.float64), torch.zeros(fan_out, dtype=torch.float64)]
    head = nn.Linear(width, n_classes, dtype=torch.float64)
    params += [head.weight.detach(), head.bias.detach()]
    return [p.clone() for p in params]


def _layer(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor):
    # h: (G, N, in); w: (G, out, in); b, gamma, beta: (G, out). Batch norm over the N examples.
    z = h @ w.transpose(-1, -2) + b.unsqueeze(-2)
    mean = z.mean(-2, keepdim=True)
    var = z.var(-2, unbiased=False, keepdim=True)
    return (z - mean) / torch.sqrt(var + EPS) * gamma.unsqueeze(-2) + beta.unsqueeze(-2)


def forward(params: Sequence[torch.Tensor], x: torch.Tensor, kind: str) -> torch.Tensor:
    """The logits for inputs ``x`` (N, in). Parameters may carry a leading grid axis G: logits (G, N, C).

    Without the grid axis the logits have shape (N, C).
    """
    check_choice("kind", kind, KINDS)
    batched = params[0].dim() == 3
    ps = list(params) if batched else [p.unsqueeze(0) for p in params]
    n_layers = (len(ps) - 2) // 4
    if (len(ps) - 2) % 4 or n_layers % 2 != 1:
        raise ValueError("`params` must come from init_params (stem, 2 layers per block, head).")
    h = torch.relu(_layer(x.to(ps[0].dtype).unsqueeze(0), *ps[0:4]))
    for blk in range((n_layers - 1) // 2):
        i = 4 + 8 * blk
        z = _layer(torch.relu(_layer(h, *ps[i : i + 4])), *ps[i + 4 : i + 8])
        h = torch.relu(h + z) if kind == "residual" else torch.relu(z)
    logits = h @ ps[-2].transpose(-1, -2) + ps[-1].unsqueeze(-2)
    return logits if batched else logits.squeeze(0)


def loss(params: Sequence[torch.Tensor], x: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean cross-entropy over the batch (one value, or one per grid point if ``params`` are batched)."""
    logits = forward(params, x, kind)
    if logits.dim() == 2:
        return F.cross_entropy(logits, y)
    g, n, c = logits.shape
    return F.cross_entropy(logits.reshape(g * n, c), y.repeat(g), reduction="none").reshape(g, n).mean(1)


def train(
    params: Sequence[torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    kind: str,
    steps: int = 100,
    lr: float = 0.01,
) -> tuple[list[torch.Tensor], list[float]]:
    """Full-batch Adam on (x, y) for ``steps`` steps; returns the trained parameters and the losses.

    ``params`` may carry a leading axis (several networks stacked, as from :func:`stack`): they train side by
    side in one batched pass, and each entry of the history is then a list with one loss per network.
    """
    check_int("steps", steps, minimum=1)
    check_float("lr", lr, minimum=0.0, strict_min=True)
    ps = [p.detach().clone().requires_grad_(True) for p in params]
    opt = optim.Adam(ps, lr=lr)
    history = []
    for _ in range(steps):
        value = loss(ps, x, y, kind)
        opt.zero_grad()
        # With a leading seed axis, ``value`` holds one loss per network. Their sum has, with respect to each
        # network's parameters, exactly that network's own gradient, and Adam works element by element, so
        # the networks train side by side exactly as they would one at a time.
        value.sum().backward()
        opt.step()
        history.append(value.item() if value.dim() == 0 else value.tolist())
    return [p.detach() for p in ps], history


def filter_normalized_direction(params: Sequence[torch.Tensor], seed: int) -> list[torch.Tensor]:
    """A random Gaussian direction with each weight row rescaled to the norm of that row of ``params``.

    Biases and batch-norm parameters (every 1-D tensor) get a zero direction, as in Li et al.'s code.
    """
    gen = runtime.generator(seed)
    out = []
    for p in params:
        if p.dim() != 2:
            out.append(torch.zeros_like(p))
            continue
        d = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        out.append(d / d.norm(dim=1, keepdim=True) * p.norm(dim=1, keepdim=True))
    return out


@torch.no_grad()
def loss_surface(
    params: Sequence[torch.Tensor],
    directions: tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]],
    x: torch.Tensor,
    y: torch.Tensor,
    kind: str,
    n: int = 21,
    radius: float = 1.0,
    chunk: int = 128,
) -> Slice:
    """𝓛(θ + a δ + b η) on an n × n grid of (a, b) in [−radius, radius]², in batched passes of ``chunk``."""
    check_int("n", n, minimum=3)
    radius = check_float("radius", radius, minimum=0.0, strict_min=True)
    delta, eta = directions
    coords = torch.linspace(-radius, radius, n, dtype=torch.float64)
    a, b = torch.meshgrid(coords, coords, indexing="ij")
    a, b = a.flatten(), b.flatten()
    values = []
    for start in range(0, a.numel(), chunk):
        ca, cb = a[start : start + chunk], b[start : start + chunk]
        batch = []
        for p, d, e in zip(params, delta, eta, strict=True):
            shape = (-1,) + (1,) * p.dim()
            batch.append(p + ca.view(shape) * d + cb.view(shape) * e)
        values.append(loss(batch, x, y, kind))
    return Slice(coords, torch.cat(values).reshape(n, n))


def principal_curvatures(surface: Slice) -> tuple[torch.Tensor, torch.Tensor]:
    """λ_min and λ_max of the 2×2 Hessian of the slice at every interior grid point (central differences)."""
    z, h = surface.loss, surface.step
    fxx = (z[2:, 1:-1] - 2 * z[1:-1, 1:-1] + z[:-2, 1:-1]) / h**2
    fyy = (z[1:-1, 2:] - 2 * z[1:-1, 1:-1] + z[1:-1, :-2]) / h**2
    fxy = (z[2:, 2:] - z[2:, :-2] - z[:-2, 2:] + z[:-2, :-2]) / (4 * h * h)
    mean = (fxx + fyy) / 2
    spread = torch.sqrt(((fxx - fyy) / 2) ** 2 + fxy**2)
    return mean - spread, mean + spread


def nonconvex_points(
    surface: Slice, tolerance: float = 0.1, radius: float | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The interior grid points (within ``radius`` of the centre, if given) and which are non-convex.

    Returns three 1-D tensors of the same length: the points' coordinates ``a`` and ``b`` and a boolean
    ``nonconvex``. A point is non-convex when its smallest principal curvature is below −``tolerance`` times
    the absolute value of its largest, i.e. the slice bends down clearly, not just by rounding.
    """
    tolerance = check_float("tolerance", tolerance, minimum=0.0)
    lmin, lmax = principal_curvatures(surface)
    bad = lmin < -tolerance * lmax.abs()
    c = surface.coords[1:-1]
    a, b = torch.meshgrid(c, c, indexing="ij")  # bad[i, j] is the point (coords[i + 1], coords[j + 1])
    inside = torch.ones_like(bad)
    if radius is not None:
        inside = (a**2 + b**2) <= radius**2
    return a[inside], b[inside], bad[inside]


def nonconvex_share(surface: Slice, tolerance: float = 0.1, radius: float | None = None) -> float:
    """The share of interior grid points (within ``radius`` of the centre, if given) that are non-convex.

    See :func:`nonconvex_points` for what counts as non-convex.
    """
    return nonconvex_points(surface, tolerance, radius)[2].double().mean().item()


@dataclass
class Result:
    """One trained network and its slice."""

    kind: str
    n_blocks: int
    seed: int
    train_loss: float
    train_accuracy: float
    surface: Slice
    nonconvex: float  # share of non-convex grid points within radius 0.5 of the trained weights


def experiment(
    kind: str,
    n_blocks: int,
    x: torch.Tensor,
    y: torch.Tensor,
    seed: int = 0,
    width: int = 16,
    steps: int = 100,
    lr: float = 0.01,
    n: int = 21,
    radius: float = 1.0,
) -> Result:
    """Train one network on (x, y), slice its loss along two filter-normalized directions, measure it."""
    return experiments(kind, n_blocks, x, y, (seed,), width, steps, lr, n, radius)[0]


def stack(networks: Sequence[Sequence[torch.Tensor]]) -> list[torch.Tensor]:
    """Parameter lists of several networks of the same shape, stacked along a new leading axis."""
    if not networks:
        raise ValueError("`networks` must hold at least one parameter list.")
    return [torch.stack(group) for group in zip(*networks, strict=True)]


def experiments(
    kind: str,
    n_blocks: int,
    x: torch.Tensor,
    y: torch.Tensor,
    seeds: Sequence[int] = (0, 1, 2),
    width: int = 16,
    steps: int = 100,
    lr: float = 0.01,
    n: int = 21,
    radius: float = 1.0,
) -> list[Result]:
    """:func:`experiment` for every seed in ``seeds``, with the networks trained side by side in one pass.

    The results equal those of calling :func:`experiment` once per seed (up to float64 rounding in the
    batched matrix products); only the training is batched, which is where the time goes.
    """
    if not isinstance(seeds, Sequence) or isinstance(seeds, str):
        raise TypeError(f"`seeds` must be a sequence of ints such as (0, 1, 2), got {seeds!r}.")
    seeds = [check_int("seed", s, minimum=0) for s in seeds]
    if not seeds:
        raise ValueError("`seeds` must hold at least one seed, e.g. (0, 1, 2).")
    n_classes = int(y.max()) + 1
    params = stack([init_params(kind, n_blocks, width, x.shape[1], n_classes, s) for s in seeds])
    x = x.to(torch.float64)
    results = []
    with single_thread():
        trained, _ = train(params, x, y, kind, steps, lr)
        for i, seed in enumerate(seeds):
            mine = [p[i] for p in trained]
            with torch.no_grad():
                logits = forward(mine, x, kind)
                train_loss = F.cross_entropy(logits, y).item()
                accuracy = (logits.argmax(1) == y).double().mean().item()
            dirs = (
                filter_normalized_direction(mine, 1000 + seed),
                filter_normalized_direction(mine, 2000 + seed),
            )
            surface = loss_surface(mine, dirs, x, y, kind, n=n, radius=radius)
            share = nonconvex_share(surface, radius=0.5)
            results.append(Result(kind, n_blocks, seed, train_loss, accuracy, surface, share))
    return results


def log_loss_levels(lowest: float, highest: float, n: int = 12) -> list[float]:
    """Contour levels evenly spaced in log scale between two losses."""
    lo, hi = math.log10(max(lowest, 1e-4)), math.log10(highest)
    return [10 ** (lo + (hi - lo) * i / (n - 1)) for i in range(n)]
