"""The catalogue of wrong answers: for every exercise checker, answers a reader could plausibly write.

Each chapter's module (``ch0.py``, ``ch1.py``, …) defines ``CATALOGUE``, a list of :class:`Entry`: the
checker's name, the reference solution, and the wrong answers it must reject, each with a phrase its feedback
must contain. ``tests/test_catalogue.py`` runs them all, and checks that every checker in
``skipflow.checks`` has an entry that covers the kinds of mistake below (or says why a kind cannot apply).

Kinds of wrong answer:

- ``hardcoded``: returns the output of the one case the checker tries (a second case must catch it);
- ``mechanism``: skips what the exercise asks for (no hook, no branch, a branch without its nonlinearity,
  the wrong shortcut, hooks left registered, …);
- ``off_by_one``: an index, count or depth off by one;
- ``shape``: the right numbers in the wrong shape or type;
- ``other``: any other plausible mistake worth keeping.

A crash and the stub's placeholder are tried for every checker automatically.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any

KINDS = ("hardcoded", "mechanism", "off_by_one", "shape")


def crash(*args: Any, **kwargs: Any) -> Any:
    """An answer whose code raises, as a half-written one does."""
    return 1 / 0


@dataclass(frozen=True)
class Wrong:
    """A wrong answer, the kind of mistake, and a phrase the checker's feedback must contain."""

    kind: str
    name: str
    answer: Any
    says: str


@dataclass(frozen=True)
class Entry:
    """The reference and the wrong answers of one checker."""

    checker: str
    reference: Any
    wrong: list[Wrong]
    not_applicable: dict[str, str] = field(default_factory=dict)  # kind -> why it cannot apply
    crash: Any = crash  # an answer that raises (override where the answer is not a function)
    crash_says: str = "ZeroDivisionError"


def entries() -> list[Entry]:
    """Every entry of every chapter module in this package."""
    found: list[Entry] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(getattr(module, "CATALOGUE", []))
    return found
