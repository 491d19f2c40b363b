"""Chapter 1's checkers accept the reference, reject plausible mistakes with a hint, and never raise."""

from __future__ import annotations

import math

import pytest
import skipflow
import torch
from torch import nn
from torch.nn import functional as F


def hooks_reference(model, x, y):
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    norms = [None] * len(linears)

    def recorder(i):
        def hook(grad):
            norms[i] = grad.norm().item()

        return hook

    handles = [m.weight.register_hook(recorder(i)) for i, m in enumerate(linears)]
    F.cross_entropy(model(x), y).backward()
    for handle in handles:
        handle.remove()
    return norms


def std_reference(fan_in, fan_out, scheme):
    if scheme == "default":
        return 1 / math.sqrt(3 * fan_in)
    if scheme == "xavier":
        return math.sqrt(2 / (fan_in + fan_out))
    return math.sqrt(2 / fan_in)


def test_grad_norms_accepts_reference(capsys):
    assert skipflow.checks.grad_norms_with_hooks(hooks_reference) is True
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda m, x, y: hooks_reference(m, x, y)[::-1], "reverse order"),
        (lambda m, x, y: [v**2 for v in hooks_reference(m, x, y)], "squared norms"),
        (
            lambda m, x, y: [mod.weight.norm().item() for mod in m.modules() if isinstance(mod, nn.Linear)],
            "norms of the weights themselves",
        ),
        (lambda m, x, y: hooks_reference(m, x, y)[:-1], "Linear layers"),
    ],
)
def test_grad_norms_rejects_mistakes_with_a_hint(wrong, hint, capsys):
    assert skipflow.checks.grad_norms_with_hooks(wrong) is False
    out = capsys.readouterr().out
    assert "not quite" in out and hint in out


def test_grad_norms_placeholder_and_crash(capsys):
    assert skipflow.checks.grad_norms_with_hooks(lambda m, x, y: None) is False
    assert "not solved yet" in capsys.readouterr().out
    assert skipflow.checks.grad_norms_with_hooks(None) is False
    assert "not solved yet" in capsys.readouterr().out

    def crashes(model, x, y):
        raise RuntimeError("boom")

    assert skipflow.checks.grad_norms_with_hooks(crashes) is False
    out = capsys.readouterr().out
    assert "RuntimeError: boom" in out and "Traceback" not in out


def test_init_std_accepts_reference(capsys):
    assert skipflow.checks.init_std(std_reference) is True
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda i, o, s: std_reference(i, o, s) ** 2, "That is the variance"),
        (
            lambda i, o, s: 1 / math.sqrt(i) if s == "default" else std_reference(i, o, s),
            "its standard deviation is b/√3",
        ),
        (
            lambda i, o, s: math.sqrt(1 / i) if s == "kaiming" else std_reference(i, o, s),
            "ReLU's gain",
        ),
        (
            lambda i, o, s: math.sqrt(2 / o) if s == "kaiming" else std_reference(i, o, s),
            "uses fan_in",
        ),
    ],
)
def test_init_std_rejects_mistakes_with_a_hint(wrong, hint, capsys):
    assert skipflow.checks.init_std(wrong) is False
    out = capsys.readouterr().out
    assert "not quite" in out and hint in out


def test_init_std_placeholder_crash_and_non_number(capsys):
    assert skipflow.checks.init_std(lambda i, o, s: None) is False
    assert "not solved yet" in capsys.readouterr().out
    assert skipflow.checks.init_std(lambda i, o, s: 1 / 0) is False
    out = capsys.readouterr().out
    assert "ZeroDivisionError" in out and "Traceback" not in out
    assert skipflow.checks.init_std(lambda i, o, s: "wide") is False
    assert "should be a number" in capsys.readouterr().out
    assert skipflow.checks.init_std(lambda i, o, s: torch.ones(2)) is False
    assert "single number" in capsys.readouterr().out
