"""Argument checks shared by the public API.

Every public function validates what a reader might plausibly get wrong and raises a ``TypeError`` or
``ValueError`` whose message names the argument and says how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Return ``value`` if it is an ``int`` (not a bool) at least ``minimum``; raise otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__} ({value!r}).")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_min: bool = False,
) -> float:
    """Return ``value`` as a float if it is a real number in range; raise otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__} ({value!r}).")
    value = float(value)
    if value != value:  # NaN
        raise ValueError(f"`{name}` must be a number, got NaN.")
    if minimum is not None:
        if strict_min and value <= minimum:
            raise ValueError(f"`{name}` must be > {minimum}, got {value}.")
        if not strict_min and value < minimum:
            raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}, got {value}.")
    return value


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``; raise a ``ValueError`` listing them otherwise."""
    choices = list(choices)
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {listed}; got {value!r}.")
    return value
