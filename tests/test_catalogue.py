"""Every exercise checker accepts its reference and rejects every wrong answer in the catalogue.

The catalogue lives in ``tests/wrong_answers/``. Beyond it, every checker gets the stub's placeholder, a
crashing answer and a few nonsensical ones, and must answer each with feedback instead of raising.
"""

from __future__ import annotations

import pytest
import skipflow
import torch
from skipflow.checks._core import REGISTRY
from wrong_answers import KINDS, entries

# Checkers of the course (tests that exercise the decorator register their own, from their own modules).
CHECKERS = {name: c for name, c in REGISTRY.items() if c.__module__.startswith("skipflow.checks.")}
ENTRIES = {e.checker: e for e in entries()}
WRONG = [(e.checker, w) for e in entries() for w in e.wrong]
OURS = "the checker itself failed"


def verdict(capsys, name: str, answer) -> tuple[bool, str]:
    capsys.readouterr()
    ok = CHECKERS[name](answer)
    return ok, capsys.readouterr().out


def test_the_checkers_are_registered():
    assert len(CHECKERS) >= 10
    assert all(getattr(skipflow.checks, name) is checker for name, checker in CHECKERS.items())


@pytest.mark.parametrize("name", sorted(CHECKERS))
def test_every_checker_has_a_catalogue_covering_every_kind(name):
    assert name in ENTRIES, f"checker {name!r} has no entry in tests/wrong_answers/"
    entry = ENTRIES[name]
    kinds = {w.kind for w in entry.wrong}
    assert kinds <= {*KINDS, "other"}, f"unknown kinds {kinds - {*KINDS, 'other'}}"
    missing = [k for k in KINDS if k not in kinds and k not in entry.not_applicable]
    assert not missing, f"{name}: the catalogue has no {missing} answer and does not say why none applies"
    assert all(len(why) > 20 for why in entry.not_applicable.values()), "give a real reason"


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_the_reference_is_accepted(capsys, name):
    ok, out = verdict(capsys, name, ENTRIES[name].reference)
    assert ok, f"{name} rejected its reference solution:\n{out}"
    assert "correct" in out


@pytest.mark.parametrize(("name", "wrong"), WRONG, ids=[f"{n}-{w.kind}-{w.name}" for n, w in WRONG])
def test_a_wrong_answer_is_rejected_with_a_reason(capsys, name, wrong):
    ok, out = verdict(capsys, name, wrong.answer)
    assert not ok, f"{name} accepted a wrong answer ({wrong.name}):\n{out}"
    assert OURS not in out, f"{name} crashed on {wrong.name}:\n{out}"
    assert wrong.says in out, f"{name}'s feedback on {wrong.name!r} should say {wrong.says!r}:\n{out}"


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_the_placeholder_is_not_solved_yet(capsys, name):
    ok, out = verdict(capsys, name, None)
    assert not ok and "not solved yet" in out


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_a_crash_becomes_feedback(capsys, name):
    entry = ENTRIES[name]
    ok, out = verdict(capsys, name, entry.crash)
    assert not ok and entry.crash_says in out and OURS not in out, out


NONSENSE = {
    "a number": 42,
    "a string": "my answer",
    "returns a string": lambda *a, **k: "answer",
    "returns NaN": lambda *a, **k: float("nan"),
    "returns a NaN tensor": lambda *a, **k: torch.full((3,), float("nan")),
    "returns an empty list": lambda *a, **k: [],
}


@pytest.mark.parametrize("name", sorted(CHECKERS))
@pytest.mark.parametrize("what", sorted(NONSENSE))
def test_nonsense_is_rejected_without_raising(capsys, name, what):
    ok, out = verdict(capsys, name, NONSENSE[what])
    assert not ok, f"{name} accepted {what}"
    assert OURS not in out, f"{name} crashed on {what}:\n{out}"
