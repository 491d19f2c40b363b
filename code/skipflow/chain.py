"""Backpropagation written out as an explicit product of layer Jacobians.

For a chain h_1 = f_1(h_0; θ_1), h_2 = f_2(h_1), …, h_N = f_N(h_{N−1}) and a loss 𝓛(h_N), the chain rule says

    ∂𝓛/∂θ_1 = ∂𝓛/∂h_N · J_N · J_{N−1} ⋯ J_2 · ∂h_1/∂θ_1,   with J_l = ∂h_l/∂h_{l−1}.

:func:`chain_rule_gradient` builds every J_l as a matrix, multiplies them out, and returns the result next to
autograd's answer, so a reader can see that backpropagation is nothing more than this product, evaluated
from the left (one vector-Jacobian product per layer) instead of by forming the matrices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "ChainGradient",
    "SignalPasses",
    "chain_modules",
    "chain_rule_gradient",
    "jacobian_product",
    "layer_jacobians",
    "signal_passes",
]


def chain_modules(net: nn.Module) -> list[nn.Module]:
    """The layers of a :class:`skipflow.models.Net` as a chain: stem, each block, then final + head."""
    if not (hasattr(net, "stem") and hasattr(net, "blocks") and hasattr(net, "head")):
        raise TypeError("`net` must be a skipflow.models.Net (with .stem, .blocks, .final and .head).")
    return [net.stem, *net.blocks, nn.Sequential(net.final, net.head)]


def _check_chain(modules: object, x: object) -> list[nn.Module]:
    if not isinstance(modules, list | tuple) or not modules:
        raise TypeError("`modules` must be a non-empty list of nn.Module (use chain_modules(net)).")
    if not all(isinstance(m, nn.Module) for m in modules):
        raise TypeError("every entry of `modules` must be a torch.nn.Module.")
    if not isinstance(x, torch.Tensor) or x.dim() != 1:
        raise ValueError("`x` must be a 1-D tensor (one example); use x[0] for the first row of a batch.")
    return list(modules)


def layer_jacobians(
    modules: list[nn.Module], x: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Run one example through the chain; return the states [h_0 = x, h_1, …, h_N] and [J_1, …, J_N].

    J_l = ∂h_l/∂h_{l−1} has shape (features of h_l, features of h_{l−1}). Put models with BatchNorm in
    eval mode first, so that one example's output does not depend on a batch.
    """
    modules = _check_chain(modules, x)
    states, jacobians = [x.detach()], []
    for module in modules:

        def f(v: torch.Tensor, module: nn.Module = module) -> torch.Tensor:
            return module(v.unsqueeze(0)).squeeze(0)

        jacobians.append(torch.autograd.functional.jacobian(f, states[-1]))
        with torch.no_grad():
            states.append(f(states[-1]))
    return states, jacobians


@dataclass(frozen=True)
class ChainGradient:
    """The gradient of the first layer's weight, by the explicit product and by autograd."""

    by_product: torch.Tensor
    by_autograd: torch.Tensor
    jacobians: list[torch.Tensor]

    @property
    def max_abs_difference(self) -> float:
        """The largest entry-wise difference between the two gradients."""
        return float((self.by_product - self.by_autograd).abs().max())


def chain_rule_gradient(
    modules: list[nn.Module],
    x: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
) -> ChainGradient:
    """∂𝓛/∂W_1 for the first weight of ``modules[0]``, computed two ways.

    ``loss_fn`` maps the chain's output h_N (1-D) to a scalar. The explicit way forms the row vector
    ∂𝓛/∂h_N, multiplies it by J_N, …, J_2 (the matrices from :func:`layer_jacobians`), and finally by
    ∂h_1/∂W_1 (as a vector-Jacobian product through the first layer). The autograd way calls
    ``backward()`` on the whole chain.
    """
    modules = _check_chain(modules, x)
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable, got {type(loss_fn).__name__}.")
    weight = next((p for p in modules[0].parameters() if p.dim() == 2), None)
    if weight is None:
        raise ValueError("`modules[0]` has no weight matrix to differentiate with respect to.")
    states, jacobians = layer_jacobians(modules, x)

    # the row vector ∂𝓛/∂h_N
    h_n = states[-1].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(h_n), h_n)
    # … · J_N ⋯ J_2  (J_1 is the first layer's own input Jacobian, which the weight gradient does not use)
    for jac in reversed(jacobians[1:]):
        g = g @ jac
    # … · ∂h_1/∂W_1
    (by_product,) = torch.autograd.grad(modules[0](x.unsqueeze(0)).squeeze(0), weight, grad_outputs=g)

    h = x.unsqueeze(0)
    for module in modules:
        h = module(h)
    (by_autograd,) = torch.autograd.grad(loss_fn(h.squeeze(0)), weight)
    return ChainGradient(by_product.detach(), by_autograd.detach(), jacobians)


def jacobian_product(jacobians: list[torch.Tensor]) -> torch.Tensor:
    """∂h_N/∂h_0 = J_N ⋯ J_2 · J_1 for the list [J_1, …, J_N] that :func:`layer_jacobians` returns."""
    if not isinstance(jacobians, list | tuple) or not jacobians:
        raise TypeError("`jacobians` must be a non-empty list of 2-D tensors, first layer first.")
    product = jacobians[0]
    for jac in jacobians[1:]:
        product = jac @ product
    return product


@dataclass(frozen=True)
class SignalPasses:
    """The size of the forward and the backward signal at every Linear layer of a network, first first.

    - ``forward``: the standard deviation of the pre-activations a_l = W_l h_{l−1} + b_l (over the batch and
      the features), one entry per Linear layer.
    - ``backward``: the root-mean-square over the batch of ‖∂𝓛/∂a_l‖, the error signal that reaches the
      same pre-activations, one entry per Linear layer (𝓛 summed, not averaged, over the batch).
    """

    forward: torch.Tensor
    backward: torch.Tensor


def signal_passes(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> SignalPasses:
    """Measure :class:`SignalPasses` in one forward and backward pass of the cross-entropy loss on ``(x, y)``.

    Summing the loss over the batch makes each example's error signal independent of the batch size.
    """
    if not isinstance(net, nn.Module):
        raise TypeError(f"`net` must be a torch.nn.Module, got {type(net).__name__}.")
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError("`x` must be a 2-D batch of inputs, shape (batch, features).")
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("`net` has no nn.Linear layer to measure.")
    outputs: dict[nn.Module, torch.Tensor] = {}

    def record(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        output.retain_grad()
        outputs[module] = output

    handles = [m.register_forward_hook(record) for m in linears]
    try:
        F.cross_entropy(net(x), y, reduction="sum").backward()
    finally:
        for handle in handles:
            handle.remove()
    forward = torch.stack([outputs[m].detach().std() for m in linears])
    backward = torch.stack([outputs[m].grad.pow(2).sum(dim=1).mean().sqrt() for m in linears])
    return SignalPasses(forward, backward)
