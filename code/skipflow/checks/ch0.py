"""Checker for the warm-up exercise on the "How to use this book" page."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from skipflow.checks._core import as_float, call, exercise, require
from skipflow.models import count_parameters as _reference_count

__all__ = ["count_parameters"]


def _cases() -> list[tuple[str, nn.Module]]:
    frozen = nn.Linear(4, 4)
    frozen.weight.requires_grad_(False)
    return [
        ("nn.Linear(3, 2)", nn.Linear(3, 2)),
        ("nn.Linear(3, 2, bias=False)", nn.Linear(3, 2, bias=False)),
        (
            "an MLP with BatchNorm",
            nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Linear(8, 1)),
        ),
        ("a Linear whose weight is frozen", frozen),
    ]


@exercise("Counting parameters")
def count_parameters(fn: Callable[[nn.Module], int]) -> None:
    """Check ``fn(model)`` returns the number of trainable scalars (parameters with requires_grad)."""
    for name, model in _cases():
        got = as_float(call(fn, model), f"for {name}, your count")
        expected = _reference_count(model)
        hint = ""
        if name.startswith("a Linear whose") and got == sum(p.numel() for p in model.parameters()):
            hint = " Count only parameters with `requires_grad=True`."
        elif name.startswith("an MLP") and got < expected:
            hint = " BatchNorm has trainable parameters too (its scale and shift)."
        elif name == "nn.Linear(3, 2)" and got == model.weight.numel():
            hint = " Did you forget the bias?"
        require(got == expected, f"for {name} the count is {expected}, you returned {got:g}.{hint}")
