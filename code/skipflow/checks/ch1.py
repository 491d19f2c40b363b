"""Checkers for chapter 1's exercises: per-layer gradient norms, and the Xavier/Kaiming standard deviation."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from skipflow import runtime
from skipflow.checks._core import as_float, as_tensor, call, exercise, require
from skipflow.models import plain_mlp, residual_mlp
from skipflow.probes import layer_grad_norms, weight_layers

__all__ = ["grad_norms_with_hooks", "init_std"]


def _grad_cases() -> list[tuple[str, nn.Module, torch.Tensor, torch.Tensor]]:
    gen = runtime.generator(1)
    x = torch.randn(32, 12, generator=gen)
    y = torch.randint(0, 3, (32,), generator=gen)
    runtime.manual_seed(0)
    plain = plain_mlp(12, 3, depth=5, width=16, activation="tanh")
    runtime.manual_seed(1)
    residual = residual_mlp(12, 3, depth=6, width=16, norm="batch", init="kaiming")
    return [("a plain tanh MLP of depth 5", plain, x, y), ("a residual MLP of depth 6", residual, x, y)]


@exercise("Per-layer gradient norms with hooks")
def grad_norms_with_hooks(fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], object]) -> None:
    """Check ``fn(model, x, y)`` returns ‖∂𝓛/∂W_l‖ of every Linear layer, first first (cross-entropy)."""
    for name, model, x, y in _grad_cases():
        expected = layer_grad_norms(model, x, y).double()
        weights = torch.stack([m.weight.detach().norm() for _, m in weight_layers(model)]).double()
        model.zero_grad(set_to_none=True)
        got = as_tensor(call(fn, model, x, y), f"for {name}, your result").flatten()
        require(
            got.numel() == expected.numel(),
            f"for {name} there are {expected.numel()} Linear layers, so expect {expected.numel()} norms; "
            f"you returned {got.numel()}. Measure the weight of every nn.Linear (biases are not asked for).",
        )
        if torch.allclose(got, expected, rtol=1e-3):
            continue
        hint = ""
        if torch.allclose(got.flip(0), expected, rtol=1e-3):
            hint = " Your norms are in reverse order: list the first layer (closest to the input) first."
        elif torch.allclose(got, expected**2, rtol=1e-3):
            hint = " These are squared norms: take the square root (`tensor.norm()`)."
        elif torch.allclose(got, weights, rtol=1e-3):
            hint = " These are the norms of the weights themselves; measure their gradients."
        shown = ", ".join(f"{v:.3g}" for v in expected.tolist())
        require(False, f"for {name} the norms are [{shown}], yours differ.{hint}")


_SCHEMES = ("default", "xavier", "kaiming")


def _reference_std(fan_in: int, fan_out: int, scheme: str) -> float:
    if scheme == "xavier":
        return math.sqrt(2.0 / (fan_in + fan_out))
    if scheme == "kaiming":
        return math.sqrt(2.0 / fan_in)
    return 1.0 / math.sqrt(3.0 * fan_in)


@exercise("Initialization standard deviations")
def init_std(fn: Callable[[int, int, str], float]) -> None:
    """Check ``fn(fan_in, fan_out, scheme)`` returns the weight std of "default", "xavier" or "kaiming"."""
    for fan_in, fan_out in [(64, 64), (100, 10), (10, 400)]:
        for scheme in _SCHEMES:
            what = f"fn({fan_in}, {fan_out}, {scheme!r})"
            got = as_float(call(fn, fan_in, fan_out, scheme), what)
            expected = _reference_std(fan_in, fan_out, scheme)
            if math.isclose(got, expected, rel_tol=1e-4):
                continue
            hint = ""
            if math.isclose(got, expected**2, rel_tol=1e-4):
                hint = " That is the variance: return its square root, the standard deviation."
            elif scheme == "default" and math.isclose(got, 1 / math.sqrt(fan_in), rel_tol=1e-4):
                hint = " 1/√fan_in is the bound b of U(−b, b); its standard deviation is b/√3."
            elif scheme == "kaiming" and math.isclose(got, math.sqrt(2 / fan_out), rel_tol=1e-4):
                hint = " Kaiming (forward mode) uses fan_in, not fan_out."
            elif scheme == "kaiming" and math.isclose(got, math.sqrt(1 / fan_in), rel_tol=1e-4):
                hint = " You forgot ReLU's gain: half the units are zero, so the variance needs a factor 2."
            elif scheme == "xavier" and math.isclose(got, math.sqrt(1 / fan_in), rel_tol=1e-4):
                hint = " Xavier averages fan_in and fan_out: Var(w) = 2/(fan_in + fan_out)."
            require(False, f"{what} should be {expected:.6g}, you returned {got:.6g}.{hint}")
