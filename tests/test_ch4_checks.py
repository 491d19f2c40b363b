"""The chapter 4 checkers accept the reference, reject plausible wrong answers helpfully, never raise."""

from __future__ import annotations

import torch
from skipflow import checks


def reference_preact(x, p):
    return x + p.lin2(torch.relu(p.bn2(p.lin1(torch.relu(p.bn1(x))))))


def test_refactor_accepts_reference(capsys):
    assert checks.full_preact_refactor(reference_preact)
    assert "correct" in capsys.readouterr().out


def test_refactor_rejects_relu_after_add(capsys):
    assert not checks.full_preact_refactor(lambda x, p: torch.relu(reference_preact(x, p)))
    assert "ReLU after the addition" in capsys.readouterr().out


def test_refactor_rejects_missing_shortcut(capsys):
    assert not checks.full_preact_refactor(lambda x, p: reference_preact(x, p) - x)
    assert "add the shortcut" in capsys.readouterr().out


def test_refactor_rejects_relu_only_and_swapped_bn(capsys):
    def relu_only(x, p):
        return x + p.bn2(p.lin2(torch.relu(p.bn1(p.lin1(torch.relu(x))))))

    def swapped(x, p):
        return x + p.lin2(torch.relu(p.bn1(p.lin1(torch.relu(p.bn2(x))))))

    assert not checks.full_preact_refactor(relu_only)
    assert "ReLU-only" in capsys.readouterr().out
    assert not checks.full_preact_refactor(swapped)
    assert "swapped" in capsys.readouterr().out


def test_refactor_placeholder_crash_and_shape(capsys):
    assert not checks.full_preact_refactor(lambda x, p: None)
    assert "not solved yet" in capsys.readouterr().out
    assert not checks.full_preact_refactor(lambda x, p: p.missing(x))
    out = capsys.readouterr().out
    assert "raised AttributeError" in out and "Traceback" not in out
    assert not checks.full_preact_refactor(lambda x, p: x.sum())
    assert "shape" in capsys.readouterr().out


def test_attenuation_accepts_reference(capsys):
    assert checks.shortcut_attenuation(lambda lam, L: lam**L)
    assert "correct" in capsys.readouterr().out


def test_attenuation_rejects_product_and_off_by_one(capsys):
    assert not checks.shortcut_attenuation(lambda lam, L: lam * L)
    assert "power, not a product" in capsys.readouterr().out
    assert not checks.shortcut_attenuation(lambda lam, L: lam ** (L - 1))
    assert "L factors" in capsys.readouterr().out
    assert not checks.shortcut_attenuation(lambda lam, L: (1 - lam) ** L)
    assert "not by 1 − λ" in capsys.readouterr().out


def test_attenuation_placeholder_and_crash(capsys):
    assert not checks.shortcut_attenuation(lambda lam, L: None)
    assert "not solved yet" in capsys.readouterr().out
    assert not checks.shortcut_attenuation(None)
    assert "not solved yet" in capsys.readouterr().out
    assert not checks.shortcut_attenuation(lambda lam, L: 1 / 0)
    out = capsys.readouterr().out
    assert "ZeroDivisionError" in out and "Traceback" not in out
    assert not checks.shortcut_attenuation(lambda lam, L: "small")
    assert "should be a number" in capsys.readouterr().out


def test_clean_orderings_accepts_reference_in_any_iterable(capsys):
    assert checks.clean_identity_orderings({"relu_before_add", "relu_only_preact", "full_preact"})
    assert checks.clean_identity_orderings(["full_preact", "relu_only_preact", "relu_before_add"])
    assert "correct" in capsys.readouterr().out


def test_clean_orderings_explains_mistakes(capsys):
    assert not checks.clean_identity_orderings({"full_preact", "relu_only_preact"})
    out = capsys.readouterr().out
    assert "missing" in out and "F ≥ 0" in out
    assert not checks.clean_identity_orderings(
        {"original", "full_preact", "relu_only_preact", "relu_before_add"}
    )
    out = capsys.readouterr().out
    assert "included but not clean" in out and "ReLU after the addition" in out


def test_clean_orderings_placeholder_and_bad_input(capsys):
    assert not checks.clean_identity_orderings(None)
    assert "not solved yet" in capsys.readouterr().out
    assert not checks.clean_identity_orderings("full_preact")
    assert "plain string" in capsys.readouterr().out
    assert not checks.clean_identity_orderings({"preact"})
    assert "unknown name" in capsys.readouterr().out
    assert not checks.clean_identity_orderings(42)
    assert "set of ordering names" in capsys.readouterr().out
