"""Instruments for looking inside a network: gradient norms, activation statistics, Jacobians.

Two kinds of gradient are measured in this course, and the names keep them apart:

- weight gradients ∂𝓛/∂W_l, one per weight layer (:func:`layer_grad_norms`, :func:`grad_to_weight_ratios`);
- stream gradients g_l = ∂𝓛/∂h_l, one per block output (:func:`stream_grad_norms`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from skipflow import runtime
from skipflow._validate import check_int

WEIGHT_LAYERS = (nn.Linear, nn.Conv2d)


def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    return model


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The Linear and Conv2d layers of ``model`` as ``(name, module)``, in registration order.

    For the models in :mod:`skipflow.models` this is the forward order: stem, blocks, head.
    """
    _check_model(model)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]


def default_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for integer class targets, mean squared error otherwise."""
    if target.dtype in (torch.int64, torch.int32):
        return F.cross_entropy(output, target)
    return F.mse_loss(output, target)


def _backward(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    loss = (loss_fn or default_loss)(model(x), y)
    loss.backward()
    return loss.detach()


def layer_grad_norms(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """‖∂𝓛/∂W_l‖ (Frobenius) for every weight layer, first layer first, from one forward/backward pass.

    The model is used in whatever mode it is in (call ``model.train()`` or ``.eval()`` first); its
    ``.grad`` fields hold this pass's gradients afterwards.
    """
    _check_model(model)
    _backward(model, x, y, loss_fn)
    return torch.stack([m.weight.grad.norm() for _, m in weight_layers(model)]).detach()


def grad_to_weight_ratios(
    model: nn.Module,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """‖∂𝓛/∂W_l‖ / ‖W_l‖ for every weight layer: roughly the relative change one SGD step (lr 1) makes.

    With ``x`` and ``y`` it runs a forward/backward pass first; without them it reads the ``.grad`` fields
    already there (e.g. inside a training loop, after ``loss.backward()``).
    """
    _check_model(model)
    if (x is None) != (y is None):
        raise ValueError("Pass both `x` and `y`, or neither (to use the gradients already stored).")
    if x is not None:
        _backward(model, x, y, loss_fn)
    ratios = []
    for name, m in weight_layers(model):
        if m.weight.grad is None:
            raise ValueError(
                f"Layer {name!r} has no gradient yet: pass `x` and `y`, or call loss.backward() first."
            )
        ratios.append(m.weight.grad.norm() / m.weight.norm().clamp_min(1e-12))
    return torch.stack(ratios).detach()


def _stream_modules(model: nn.Module) -> list[nn.Module]:
    if not (hasattr(model, "stem") and hasattr(model, "blocks")):
        raise TypeError("`model` must be a skipflow.models.Net (it needs `.stem` and `.blocks`).")
    return [model.stem, *model.blocks]


def stream_grad_norms(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """‖g_l‖ = ‖∂𝓛/∂h_l‖ for h_0 (the stem output) and every block output h_1 … h_L.

    Norms are over the whole batch tensor. Returns a tensor of length ``model.n_blocks + 1``.
    """
    _check_model(model)
    outputs: list[torch.Tensor] = []

    def keep(_module: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        out.retain_grad()
        outputs.append(out)

    handles = [m.register_forward_hook(keep) for m in _stream_modules(model)]
    try:
        _backward(model, x, y, loss_fn)
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack([h.grad.norm() for h in outputs]).detach()


@torch.no_grad()
def activation_stats(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean and standard deviation of h_0 (stem output) and of every block output h_l.

    Returns ``{"mean": tensor, "std": tensor, "rms": tensor}``, each of length ``n_blocks + 1``.
    """
    _check_model(model)
    outs: list[torch.Tensor] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, o: outs.append(o.detach())) for m in _stream_modules(model)
    ]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {
        "mean": torch.stack([o.mean() for o in outs]),
        "std": torch.stack([o.std() for o in outs]),
        "rms": torch.stack([o.pow(2).mean().sqrt() for o in outs]),
    }


def input_jacobian(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The Jacobian ∂fn(x)/∂x of a function of one input vector, shape (out_features, in_features).

    ``x`` must be 1-D. For a model with BatchNorm, call ``model.eval()`` first so that the example does
    not depend on the rest of a batch.
    """
    if not callable(fn):
        raise TypeError(f"`fn` must be callable, got {type(fn).__name__}.")
    if not isinstance(x, torch.Tensor) or x.dim() != 1:
        raise ValueError("`x` must be a 1-D tensor (one example); use x[0] for the first row of a batch.")
    return torch.autograd.functional.jacobian(lambda v: fn(v.unsqueeze(0)).squeeze(0), x)


def jacobian_singular_values(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The singular values (largest first) of :func:`input_jacobian` at ``x``."""
    return torch.linalg.svdvals(input_jacobian(fn, x))


def mean_layer_grad_norms(
    make_model: Callable[[], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    n_seeds: int = 5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Geometric mean and (min, max) spread of :func:`layer_grad_norms` over ``n_seeds`` inits.

    ``make_model`` is called after seeding with 0, 1, …; returns ``(geo_mean, stacked)`` where ``stacked``
    has one row per seed.
    """
    check_int("n_seeds", n_seeds, minimum=1)
    rows = []
    for seed in range(n_seeds):
        runtime.manual_seed(seed)
        rows.append(layer_grad_norms(make_model(), x, y))
    stacked = torch.stack(rows)
    return stacked.clamp_min(1e-45).log().mean(0).exp(), stacked
