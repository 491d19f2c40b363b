"""The "do residual connections help the gradient?" experiment from a popular blog post, done properly.

The post built a 5-layer bias-free ReLU MLP, ``4 × Linear(10, 10)`` then ``Linear(10, 1)``, measured the mean
absolute gradient of each layer's weights with and without the skip ``x = relu(layer(x)) + x``, and showed a
single run with no seed. Here the same networks are run for many seeds at once: every seed's weights are
stacked into one batched tensor, so 200 seeds cost about as much as one. The plain and the residual network
of a seed share the same weights and data, so their ratio isolates the effect of the skip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from skipflow import runtime
from skipflow._validate import check_int

__all__ = ["BlogResult", "blog_experiment", "blog_forward"]


@dataclass(frozen=True)
class BlogResult:
    """What :func:`blog_experiment` measured; every tensor has one row per seed.

    - ``plain_grad``, ``residual_grad``: mean |∂𝓛/∂W_l| of each layer, shape (seeds, layers).
    - ``ratio``: ``residual_grad / plain_grad``.
    - ``plain_last_input``, ``residual_last_input``: the norm of the last layer's input activations
      (the whole batch), shape (seeds,).
    - ``plain_out_grad``, ``residual_out_grad``: the norm of ∂𝓛/∂output, shape (seeds,).
    - ``plain_last_grad``, ``residual_last_grad``: the Frobenius norm of the last layer's weight gradient,
      shape (seeds,).
    """

    plain_grad: torch.Tensor
    residual_grad: torch.Tensor
    plain_last_input: torch.Tensor
    residual_last_input: torch.Tensor
    plain_out_grad: torch.Tensor
    residual_out_grad: torch.Tensor
    plain_last_grad: torch.Tensor
    residual_last_grad: torch.Tensor

    @property
    def ratio(self) -> torch.Tensor:
        """Residual / plain mean |grad|, per seed and layer."""
        return self.residual_grad / self.plain_grad

    @property
    def last_input_ratio(self) -> torch.Tensor:
        """Residual / plain norm of the last layer's input activations, per seed."""
        return self.residual_last_input / self.plain_last_input

    @property
    def out_grad_ratio(self) -> torch.Tensor:
        """Residual / plain norm of ∂𝓛/∂output, per seed."""
        return self.residual_out_grad / self.plain_out_grad

    @property
    def last_grad_ratio(self) -> torch.Tensor:
        """Residual / plain Frobenius norm of the last layer's weight gradient, per seed."""
        return self.residual_last_grad / self.plain_last_grad

    @property
    def plain_alignment(self) -> torch.Tensor:
        """How well error and input line up across the batch in the plain net's last layer, per seed.

        The last layer's weight gradient is δᵀH, with δ = ∂𝓛/∂output (batch × 1) and H its input
        (batch × width), so ‖δᵀH‖ = alignment × ‖δ‖ × ‖H‖ with an alignment between 0 and 1: 1 when every
        example's input is a multiple of one vector and the errors weight them without cancelling.
        """
        return self.plain_last_grad / (self.plain_out_grad * self.plain_last_input)

    @property
    def residual_alignment(self) -> torch.Tensor:
        """The same as :attr:`plain_alignment`, for the residual net."""
        return self.residual_last_grad / (self.residual_out_grad * self.residual_last_input)

    @property
    def alignment_ratio(self) -> torch.Tensor:
        """Residual / plain alignment, per seed: with the input and error ratios, it multiplies exactly to
        :attr:`last_grad_ratio`."""
        return self.residual_alignment / self.plain_alignment


def blog_weights(n_seeds: int, width: int = 10, n_layers: int = 5, first_seed: int = 0) -> list[torch.Tensor]:
    """PyTorch's default Linear init, U(−1/√fan_in, 1/√fan_in), for ``n_seeds`` independent networks.

    Seed ``first_seed + s`` draws network ``s``. Returns one tensor per layer of shape (seeds, out, in):
    ``n_layers − 1`` square ``width × width`` layers and a ``1 × width`` output layer.
    """
    check_int("n_seeds", n_seeds, minimum=1)
    check_int("width", width, minimum=1)
    check_int("n_layers", n_layers, minimum=2)
    check_int("first_seed", first_seed, minimum=0)
    bound = 1.0 / math.sqrt(width)
    shapes = [(width, width)] * (n_layers - 1) + [(1, width)]
    per_seed = []
    for s in range(n_seeds):
        gen = runtime.generator(first_seed + s)
        per_seed.append([(torch.rand(shape, generator=gen) * 2 - 1) * bound for shape in shapes])
    return [torch.stack([w[k] for w in per_seed]) for k in range(n_layers)]


def blog_forward(
    weights: list[torch.Tensor], x: torch.Tensor, residual: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the stacked networks on ``x`` (seeds, batch, width); return (output, last layer's input).

    Hidden layers compute ``h = relu(h @ W.T)``, plus ``h`` itself when ``residual``; the last layer is
    linear. No biases, as in the blog post.
    """
    if not isinstance(residual, bool):
        raise TypeError(f"`residual` must be True or False, got {residual!r}.")
    if x.dim() != 3:
        raise ValueError("`x` must have shape (seeds, batch, width); add a leading seed dimension.")
    h = x
    for w in weights[:-1]:
        a = torch.relu(h @ w.transpose(1, 2))
        h = a + h if residual else a
    return h @ weights[-1].transpose(1, 2), h


def blog_experiment(n_seeds: int = 200, batch: int = 64, width: int = 10, n_layers: int = 5) -> BlogResult:
    """Measure the per-layer mean |gradient| of the plain and the residual network for ``n_seeds`` seeds.

    Each seed has its own weights (PyTorch's default init), its own standard-normal inputs
    (``batch × width``) and targets, and the mean squared error loss. Both networks of a seed see the
    same weights and data.
    """
    check_int("batch", batch, minimum=1)
    weights = blog_weights(n_seeds, width, n_layers)
    gen = runtime.generator(10_000)
    x = torch.randn(n_seeds, batch, width, generator=gen)
    y = torch.randn(n_seeds, batch, 1, generator=gen)
    results = {}
    for residual in (False, True):
        ws = [w.clone().requires_grad_(True) for w in weights]
        out, last_in = blog_forward(ws, x, residual)
        out.retain_grad()
        # one loss per seed, summed: seeds are independent, so each seed's gradient is its own
        loss = ((out - y) ** 2).mean(dim=(1, 2)).sum()
        loss.backward()
        grads = torch.stack([w.grad.abs().mean(dim=(1, 2)) for w in ws], dim=1)
        results[residual] = (
            grads,
            last_in.detach().flatten(1).norm(dim=1),
            out.grad.flatten(1).norm(dim=1),
            ws[-1].grad.flatten(1).norm(dim=1),
        )
    (pg, pin, pout, plast), (rg, rin, rout, rlast) = results[False], results[True]
    return BlogResult(pg, rg, pin, rin, pout, rout, plast, rlast)
