"""Claims that check themselves, and the ledger each chapter shows at its end.

Every quantitative claim the text makes is checked by the notebook that makes it. Instead of a bare
``assert``, a chapter calls :func:`check` (or :func:`check_between`), which

1. evaluates the condition and raises :class:`ClaimFailed` (an ``AssertionError``) when it does not hold,
   so nbval, the book build and every seed-shifted run of ``make test`` fail on a false claim;
2. records the claim in words, the measured value, the condition and the reason for its tolerance in the
   page's ledger, which :func:`show_ledger` prints as the folded table "How this page checks itself".

The table is produced by the very calls that check the claims, so it cannot drift from them. A check of a
mathematical identity (σ′ ≤ 1/4, submultiplicativity of norms) is recorded as a *guard*: it protects the
code against bugs, but it is not evidence for anything the chapter measures.

Example::

    check_between("plain-56 trains worse than plain-20 (points of training accuracy)",
                  acc20 - acc56, low=5,
                  why="the smallest gap over 3 seed offsets is 9 points; 5 leaves room for BLAS noise")
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Claim", "ClaimFailed", "check", "check_between", "ledger", "reset", "show_ledger"]


@dataclass(frozen=True)
class Claim:
    """One row of the ledger."""

    claim: str  # the claim in words, as the prose states it
    value: str  # what was measured, formatted for the table
    condition: str  # the condition that was asserted
    why: str  # one line: why this condition and tolerance
    guard: bool  # True: a mathematical identity, checked as a guard against bugs, not as evidence


class ClaimFailed(AssertionError):
    """A claim of the text did not hold for what the notebook measured."""


_LEDGER: dict[str, Claim] = {}


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"`{name}` must be a non-empty string, got {value!r}.")
    return value.strip()


def format_value(value: Any, digits: int = 3) -> str:
    """Format a measured value for the ledger: ``digits`` significant figures, lists elementwise."""
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.{digits}g}"
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return ", ".join(f"{k}: {format_value(v, digits)}" for k, v in value.items())
    if isinstance(value, Sequence):
        shown = [format_value(v, digits) for v in value[:8]]
        more = f", … ({len(value)} values)" if len(value) > 8 else ""
        return "[" + ", ".join(shown) + more + "]"
    return str(value)


def check(claim: str, holds: Any, *, value: Any, condition: str, why: str, guard: bool = False) -> None:
    """Record ``claim`` in the ledger and raise :class:`ClaimFailed` unless ``holds`` is true.

    Args:
        claim: the claim in words, as the prose states it.
        holds: the outcome of the condition (a bool, or a one-element tensor).
        value: what was measured (a number, a list of numbers, or a short string).
        condition: the condition, in words or symbols, e.g. ``"every seed: ratio < 1e-3"``.
        why: one line on why this condition and its tolerance state the claim.
        guard: True when the condition is a mathematical identity rather than evidence.
    """
    row = Claim(
        claim=_text("claim", claim),
        value=format_value(value),
        condition=_text("condition", condition),
        why=_text("why", why),
        guard=bool(guard),
    )
    if isinstance(holds, torch.Tensor):
        if holds.numel() != 1:
            raise TypeError(
                f"`holds` must be a single truth value, got a tensor of shape {tuple(holds.shape)}."
            )
        holds = holds.item()
    if not isinstance(holds, bool | int) and not hasattr(holds, "__bool__"):
        raise TypeError(f"`holds` must be a truth value, got {type(holds).__name__}.")
    _LEDGER[row.claim] = row  # re-running a cell replaces its row instead of adding a second one
    if not bool(holds):
        raise ClaimFailed(
            f"claim failed: {row.claim}\n  measured: {row.value}\n  condition: {row.condition}\n"
            f"  (tolerance: {row.why})"
        )


def check_between(
    claim: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    why: str,
    guard: bool = False,
    strict: bool = False,
) -> Any:
    """Check ``low ≤ value ≤ high`` (``<`` with ``strict``) for a number or every number of a list.

    Either bound may be ``None``. Returns ``value`` unchanged, so a measured number can be checked where it
    is computed. Raises :class:`ClaimFailed` when a value is outside the bounds or is NaN.
    """
    if low is None and high is None:
        raise ValueError("check_between needs `low`, `high` or both; for other conditions use check().")
    numbers = _numbers(value)
    if not numbers:
        raise ValueError("`value` is empty: there is nothing to check.")
    lt = "<" if strict else "≤"
    parts = []
    if low is not None:
        parts.append(f"{format_value(float(low))} {lt}")
    parts.append("every value" if len(numbers) > 1 else "value")
    if high is not None:
        parts.append(f"{lt} {format_value(float(high))}")

    def inside(x: float) -> bool:
        if math.isnan(x):
            return False
        above = low is None or (x > low if strict else x >= low)
        below = high is None or (x < high if strict else x <= high)
        return above and below

    check(
        claim, all(inside(x) for x in numbers), value=value, condition=" ".join(parts), why=why, guard=guard
    )
    return value


def _numbers(value: Any) -> list[float]:
    if isinstance(value, torch.Tensor):
        return [float(v) for v in value.detach().flatten().tolist()]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [x for v in value for x in _numbers(v)]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"`value` must be a number or a list of numbers, got {type(value).__name__}.")
    return [float(value)]


def ledger() -> list[Claim]:
    """The claims checked so far in this kernel, in the order they were first checked."""
    return list(_LEDGER.values())


def reset() -> None:
    """Start an empty ledger (``setup_notebook`` calls it at the top of every chapter)."""
    _LEDGER.clear()


# Scoped to the ledger; the theme's colour variables keep it readable in light and dark mode.
LEDGER_CSS = (
    ".skipflow-ledger summary{cursor:pointer;font-weight:600}"
    ".skipflow-ledger-scroll{overflow-x:auto;max-width:100%}"
    ".skipflow-ledger table{border-collapse:collapse;font-size:0.85em;width:100%}"
    ".skipflow-ledger th,.skipflow-ledger td{border-bottom:1px solid var(--pst-color-border,#ccc);"
    "padding:0.3em 0.5em;text-align:left;vertical-align:top}"
)


def ledger_html(rows: list[Claim] | None = None) -> str:
    """The ledger as a folded HTML table (a ``<details>`` element, closed by default)."""
    rows = ledger() if rows is None else rows
    n_guard = sum(r.guard for r in rows)
    n_evidence = len(rows) - n_guard
    body = "".join(
        "<tr>"
        f"<td>{html.escape(r.claim)}</td>"
        f"<td class='skipflow-ledger-value'>{html.escape(r.value)}</td>"
        f"<td>{html.escape(r.condition)}</td>"
        f"<td>{html.escape(r.why)}</td>"
        f"<td>{'guard' if r.guard else 'evidence'}</td>"
        "</tr>"
        for r in rows
    )
    return (
        f"<style>{LEDGER_CSS}</style>"
        "<details class='skipflow-ledger'>"
        f"<summary>Open the table: {n_evidence} measured claims and {n_guard} guards, each checked when this "
        "page was built</summary>"
        "<p>Each row was written by the code that checked it. <em>Evidence</em> is a measurement that "
        "could have come out otherwise; a <em>guard</em> checks a mathematical identity, to catch bugs "
        "in the code.</p>"
        "<div class='skipflow-ledger-scroll'><table>"
        "<thead><tr><th>claim</th><th>measured</th><th>condition checked</th><th>why this tolerance</th>"
        "<th>kind</th></tr></thead>"
        f"<tbody>{body}</tbody></table></div></details>"
    )


def show_ledger() -> None:
    """Display the ledger: a folded HTML table in Jupyter and the book, plain lines elsewhere."""
    rows = ledger()
    if not rows:
        raise ClaimFailed("the ledger is empty: this page checks none of its claims")
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:  # plain Python
        get_ipython = None  # type: ignore[assignment]
    if get_ipython is not None and get_ipython() is not None:
        display(HTML(ledger_html(rows)))
        return
    for r in rows:
        kind = "guard" if r.guard else "evidence"
        print(f"[{kind}] {r.claim}: {r.value} ({r.condition}; {r.why})")
