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
    """Three cases: two architectures, and a second plain net with other weights and data.

    The third case has the same shape as the first, so an answer that hard-codes the first case's norms
    (even one that picks them by the number of layers) is caught by its values.
    """
    gen = runtime.generator(1)
    x = torch.randn(32, 12, generator=gen)
    y = torch.randint(0, 3, (32,), generator=gen)
    x2 = torch.randn(24, 12, generator=gen)
    y2 = torch.randint(0, 3, (24,), generator=gen)
    runtime.manual_seed(0)
    plain = plain_mlp(12, 3, depth=5, width=16, activation="tanh")
    runtime.manual_seed(1)
    residual = residual_mlp(12, 3, depth=6, width=16, norm="batch", init="kaiming")
    runtime.manual_seed(2)
    other = plain_mlp(12, 3, depth=5, width=16, activation="tanh")
    return [
        ("a plain tanh MLP of depth 5", plain, x, y),
        ("a residual MLP of depth 6", residual, x, y),
        ("another plain tanh MLP of depth 5 (other weights, other batch)", other, x2, y2),
    ]


_HOOK_METHODS = ("register_hook", "register_post_accumulate_grad_hook")


def _call_watching_hooks(fn: Callable, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """Call ``fn(model, x, y)`` and count the tensor hooks it registers on each Linear weight."""
    weights = [m.weight for _, m in weight_layers(model)]
    registered = dict.fromkeys(map(id, weights), 0)
    originals = {name: getattr(torch.Tensor, name) for name in _HOOK_METHODS}

    def watch(name: str) -> Callable:
        original = originals[name]

        def method(tensor: torch.Tensor, *args: object, **kwargs: object) -> object:
            if id(tensor) in registered:
                registered[id(tensor)] += 1
            return original(tensor, *args, **kwargs)

        return method

    for name in _HOOK_METHODS:
        setattr(torch.Tensor, name, watch(name))
    try:
        result = call(fn, model, x, y)
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
    hooked = [registered[id(w)] > 0 for w in weights]
    left = [bool(w._backward_hooks) or bool(getattr(w, "_post_accumulate_grad_hooks", None)) for w in weights]
    return result, hooked, left


@exercise("Per-layer gradient norms with hooks")
def grad_norms_with_hooks(fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], object]) -> None:
    """Check ``fn(model, x, y)`` returns ‖∂𝓛/∂W_l‖ of every Linear layer, first first (cross-entropy).

    The exercise asks for hooks, so the answer must register a tensor hook on every Linear weight
    (``weight.register_hook`` or ``weight.register_post_accumulate_grad_hook``) and remove them all
    before it returns. Three cases are tried, so that hard-coded numbers cannot pass.
    """
    missing: list[int] = []
    still: list[int] = []
    for name, model, x, y in _grad_cases():
        expected = layer_grad_norms(model, x, y).double()
        weights = torch.stack([m.weight.detach().norm() for _, m in weight_layers(model)]).double()
        model.zero_grad(set_to_none=True)
        answer, hooked, left = _call_watching_hooks(fn, model, x, y)
        got = as_tensor(answer, f"for {name}, your result").flatten()
        require(
            got.numel() == expected.numel(),
            f"for {name} there are {expected.numel()} Linear layers, so expect {expected.numel()} norms; "
            f"you returned {got.numel()}. Measure the weight of every nn.Linear (biases are not asked for).",
        )
        if not torch.allclose(got, expected, rtol=1e-3):
            hint = ""
            if torch.allclose(got.flip(0), expected, rtol=1e-3):
                hint = " Your norms are in reverse order: list the first layer (closest to the input) first."
            elif torch.allclose(got, expected**2, rtol=1e-3):
                hint = " These are squared norms: take the square root (`tensor.norm()`)."
            elif torch.allclose(got, weights, rtol=1e-3):
                hint = " These are the norms of the weights themselves; measure their gradients."
            shown = ", ".join(f"{v:.3g}" for v in expected.tolist())
            require(False, f"for {name} the norms are [{shown}], yours differ.{hint}")
        # The values come first, for every case: a hard-coded answer is told its numbers are wrong.
        missing = missing or [i + 1 for i, ok in enumerate(hooked) if not ok]
        still = still or [i + 1 for i, on in enumerate(left) if on]
    require(
        not missing,
        f"the numbers are right, but no hook was registered on the weight of Linear layer(s) {missing}. "
        "The exercise asks you to record each norm with a hook during `loss.backward()`: call "
        "`module.weight.register_hook(...)` on every Linear weight instead of reading `.grad` "
        "afterwards.",
    )
    require(
        not still,
        f"the numbers are right, but the hooks on Linear layer(s) {still} are still registered after "
        "your function returned. Keep the handles that `register_hook` returns and call "
        "`handle.remove()` on each (in a `finally:` block), or every later backward pass runs your hooks "
        "again.",
    )


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
            elif scheme == "xavier" and math.isclose(got, math.sqrt(6 / (fan_in + fan_out)), rel_tol=1e-4):
                hint = (
                    " That is the bound a of Glorot & Bengio's uniform init U(−a, a); its standard "
                    "deviation is a/√3."
                )
            elif math.isclose(got, _reference_std(fan_in + 1, fan_out, scheme), rel_tol=1e-4):
                hint = " It looks as if fan_in counted the bias too: fan_in is the number of input features."
            require(False, f"{what} should be {expected:.6g}, you returned {got:.6g}.{hint}")
