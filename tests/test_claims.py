"""skipflow.claims records and checks claims; skipflow.runtime shifts every seed by SKIPFLOW_SEED_OFFSET."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from skipflow import claims, data, runtime


@pytest.fixture(autouse=True)
def _empty_ledger():
    claims.reset()
    yield
    claims.reset()


def test_a_true_claim_is_recorded():
    claims.check_between("ratio is small", 0.01, high=0.1, why="an order of magnitude of margin")
    (row,) = claims.ledger()
    assert row.claim == "ratio is small" and row.value == "0.01" and "≤ 0.1" in row.condition
    assert not row.guard


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [(0.2, None, 0.1), (-1.0, 0.0, None), (float("nan"), 0.0, 1.0), ([0.5, 1.5], 0.0, 1.0)],
)
def test_a_false_claim_fails_and_says_what_was_measured(value, low, high):
    with pytest.raises(claims.ClaimFailed, match="measured"):
        claims.check_between("the claim", value, low, high, why="w")
    assert claims.ledger()[0].claim == "the claim"  # failed claims are recorded too


def test_strict_bounds_exclude_the_bound():
    claims.check_between("x ≤ 1", 1.0, high=1.0, why="w")
    with pytest.raises(claims.ClaimFailed):
        claims.check_between("x < 1", 1.0, high=1.0, strict=True, why="w")


def test_check_takes_any_condition_and_marks_guards():
    claims.check("σ′ ≤ 1/4", True, value=0.25, condition="max σ′ ≤ 0.25", why="identity", guard=True)
    with pytest.raises(claims.ClaimFailed):
        claims.check("a tensor condition", torch.tensor(False), value=1, condition="c", why="w")
    assert [r.guard for r in claims.ledger()] == [True, False]


def test_rerunning_a_cell_replaces_its_row():
    for value in (0.1, 0.2):
        claims.check_between("same claim", value, high=1, why="w")
    assert [r.value for r in claims.ledger()] == ["0.2"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"claim": "", "value": 1, "low": 0, "why": "w"},
        {"claim": "c", "value": 1, "low": 0, "why": " "},
        {"claim": "c", "value": 1, "why": "w"},  # no bound at all
        {"claim": "c", "value": "big", "low": 0, "why": "w"},
        {"claim": "c", "value": [], "low": 0, "why": "w"},
    ],
)
def test_bad_arguments_are_named(kwargs):
    with pytest.raises((TypeError, ValueError)):
        claims.check_between(**kwargs)


def test_the_ledger_is_a_folded_table_with_every_row():
    claims.check_between("first <claim>", [1.0, 2.0], low=0, why="because")
    claims.check("second", True, value="ok", condition="c", why="w", guard=True)
    page = claims.ledger_html()
    assert "<details class='skipflow-ledger'>" in page and "<details open" not in page
    assert "first &lt;claim&gt;" in page and page.count("<tr>") == 3
    assert "1 measured claims and 1 guards" in page


def test_an_empty_ledger_is_an_error(capsys):
    with pytest.raises(claims.ClaimFailed, match="empty"):
        claims.show_ledger()


def test_format_value():
    assert claims.format_value(torch.tensor(0.123456)) == "0.123"
    assert claims.format_value([1, 2.5]) == "[1, 2.5]"
    assert claims.format_value(list(range(10))).endswith("(10 values)]")


# ----------------------------------------------------------------------------------- seed offset
def _draws() -> tuple:
    gen = runtime.seed_everything(3)
    return (
        random.random(),
        float(np.random.rand()),
        float(torch.rand(())),
        float(torch.rand((), generator=gen)),
        float(torch.rand((), generator=runtime.generator(3))),
    )


def test_no_offset_means_the_plain_seed(monkeypatch):
    monkeypatch.delenv(runtime.SEED_OFFSET_VARIABLE, raising=False)
    assert runtime.seed_offset() == 0 and runtime.shifted(5) == 5
    first = _draws()
    torch.manual_seed(3)
    assert first[2] == float(torch.rand(()))
    assert first[4] == float(torch.rand((), generator=torch.Generator().manual_seed(3)))


def test_an_offset_shifts_every_generator(monkeypatch):
    monkeypatch.delenv(runtime.SEED_OFFSET_VARIABLE, raising=False)
    base = _draws()
    monkeypatch.setenv(runtime.SEED_OFFSET_VARIABLE, "1")
    shifted = _draws()
    assert all(a != b for a, b in zip(base, shifted, strict=True))
    monkeypatch.delenv(runtime.SEED_OFFSET_VARIABLE)
    assert _draws() == base  # the same seeds give the same numbers again


def test_an_offset_equals_the_shifted_seed(monkeypatch):
    monkeypatch.setenv(runtime.SEED_OFFSET_VARIABLE, "2")
    runtime.manual_seed(1)
    a = torch.rand(4)
    monkeypatch.setenv(runtime.SEED_OFFSET_VARIABLE, "0")
    runtime.manual_seed(3)
    assert torch.equal(a, torch.rand(4))
    assert "seeds shifted" not in runtime.describe()


def test_an_offset_changes_the_digits_split(monkeypatch):
    monkeypatch.delenv(runtime.SEED_OFFSET_VARIABLE, raising=False)
    base = data.load_digits().y_train[:50]
    monkeypatch.setenv(runtime.SEED_OFFSET_VARIABLE, "1")
    assert not torch.equal(base, data.load_digits().y_train[:50])
    assert "seeds shifted by 1" in runtime.describe()


@pytest.mark.parametrize("bad", ["one", "1.5", "-1"])
def test_a_bad_offset_is_named(monkeypatch, bad):
    monkeypatch.setenv(runtime.SEED_OFFSET_VARIABLE, bad)
    with pytest.raises(ValueError, match="SKIPFLOW_SEED_OFFSET"):
        runtime.seed_offset()
