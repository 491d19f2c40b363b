"""The checker pattern shared by every exercise.

A checker receives the reader's answer (usually a function), runs it on cases with known answers, and
*prints* feedback. It returns True or False and never raises, whatever the answer does:

- the stub's placeholder (``None`` or ``...``) gets "not solved yet";
- a wrong answer gets a hint that says what was expected;
- an answer that crashes gets the exception's type and message, and a hint;
- a bug in the checker itself is reported as such, never as the reader's fault.
"""

from __future__ import annotations

import functools
import math
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import torch

Checker = TypeVar("Checker", bound=Callable[..., None])
PLACEHOLDERS = (None, Ellipsis, NotImplemented)
REGISTRY: dict[str, Callable[..., bool]] = {}  # every checker, by name: the test suite's catalogue reads it


class NotSolved(Exception):
    """The answer is still the stub's placeholder."""


class Incorrect(Exception):
    """The answer runs but gives a wrong result; the message says what was expected."""


class StudentError(Exception):
    """The answer raised an exception; ``original`` holds it."""

    def __init__(self, original: BaseException):
        super().__init__(str(original))
        self.original = original


def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call the reader's ``fn``; its exceptions become :class:`StudentError`, placeholders NotSolved."""
    if is_placeholder(fn):
        raise NotSolved
    if not callable(fn):
        raise Incorrect(f"expected a function, got {type(fn).__name__}: pass the function itself.")
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # the reader's code may raise anything
        raise StudentError(exc) from exc
    if is_placeholder(result):
        raise NotSolved
    return result


def is_placeholder(value: Any) -> bool:
    """True for the stubs' placeholders ``None``, ``...`` and ``NotImplemented`` (compared by identity)."""
    return any(value is p for p in PLACEHOLDERS)


def require(condition: bool, message: str) -> None:
    """Raise :class:`Incorrect` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise Incorrect(message)


def as_float(value: Any, what: str) -> float:
    """Convert the reader's result to a float, or explain why it cannot be one."""
    if isinstance(value, torch.Tensor):
        require(
            value.numel() == 1,
            f"{what} should be a single number, got a tensor of shape {tuple(value.shape)}.",
        )
        value = value.item()
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Incorrect(f"{what} should be a number, got {type(value).__name__}.") from None
    require(math.isfinite(number), f"{what} should be finite, got {number}.")
    return number


def require_close(got: Any, expected: float, what: str, rtol: float = 1e-4, atol: float = 0.0) -> None:
    """Check a scalar answer against the reference value with a relative tolerance."""
    value = as_float(got, what)
    require(
        math.isclose(value, expected, rel_tol=rtol, abs_tol=atol),
        f"{what}: expected {expected:.6g}, got {value:.6g}.",
    )


def as_tensor(value: Any, what: str) -> torch.Tensor:
    """Convert the reader's result to a float tensor, or explain why it cannot be one."""
    try:
        return torch.as_tensor(value, dtype=torch.float64)
    except Exception:
        raise Incorrect(
            f"{what} should be a tensor or a list of numbers, got {type(value).__name__}."
        ) from None


def exercise(title: str) -> Callable[[Checker], Callable[..., bool]]:
    """Turn a function that raises NotSolved/Incorrect/StudentError into a friendly checker.

    The decorated checker prints one verdict and returns True (correct) or False (anything else).
    """

    def wrap(check: Checker) -> Callable[..., bool]:
        @functools.wraps(check)
        def checker(*args: Any, **kwargs: Any) -> bool:
            try:
                check(*args, **kwargs)
            except NotSolved:
                print(f"⏳ {title}: not solved yet. Replace the placeholder and run this cell again.")
                return False
            except Incorrect as exc:
                print(f"❌ {title}: not quite. {exc}")
                return False
            except StudentError as exc:
                err = exc.original
                print(f"❌ {title}: your code raised {type(err).__name__}: {err}")
                frames = traceback.extract_tb(err.__traceback__)
                if frames:
                    last = frames[-1]
                    print(f"   (in {last.name}, line {last.lineno}: {last.line})")
                return False
            except Exception as exc:  # a bug in the checker must not look like the reader's fault
                print(
                    f"⚠️ {title}: the checker itself failed ({type(exc).__name__}: {exc}). "
                    "This is our bug, not yours; please report it."
                )
                return False
            print(f"✅ {title}: correct!")
            return True

        REGISTRY[check.__name__] = checker
        return checker

    return wrap
