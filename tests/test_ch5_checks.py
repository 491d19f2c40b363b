"""Chapter 5's checkers accept the reference, reject plausible mistakes, and never raise."""

from __future__ import annotations

import torch
from skipflow import checks
from torch import nn


class GoodReZero(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.branch = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.alpha * self.branch(h)


class BufferReZero(GoodReZero):
    def __init__(self, width: int) -> None:
        super().__init__(width)
        del self.alpha
        self.register_buffer("alpha", torch.zeros(()))


class OneReZero(GoodReZero):
    def __init__(self, width: int) -> None:
        super().__init__(width)
        self.alpha = nn.Parameter(torch.ones(()))


def test_rezero_block(capsys) -> None:
    assert checks.rezero_block(GoodReZero)
    assert not checks.rezero_block(BufferReZero)
    assert "learnable scalar" in capsys.readouterr().out
    assert not checks.rezero_block(OneReZero)
    assert "identity" in capsys.readouterr().out
    assert not checks.rezero_block(None)
    assert "not solved yet" in capsys.readouterr().out
    assert not checks.rezero_block(lambda width: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out


def good_sd(h, branch, survival, training):
    if training:
        return h + branch(h) if torch.rand(()).item() < survival else h
    return h + survival * branch(h)


def test_stochastic_depth_step(capsys) -> None:
    assert checks.stochastic_depth_step(good_sd)
    assert not checks.stochastic_depth_step(lambda h, b, p, t: h + b(h) if not t else good_sd(h, b, p, t))
    assert "scale the branch" in capsys.readouterr().out

    def inverted(h, branch, survival, training):
        if training:
            return h + branch(h) / survival if torch.rand(()).item() < survival else h
        return h + branch(h)

    assert not checks.stochastic_depth_step(inverted)
    assert "h + p·F(h)" in capsys.readouterr().out

    def elementwise(h, branch, survival, training):
        if training:
            return h + (torch.rand_like(h) < survival) * branch(h)
        return h + survival * branch(h)

    assert not checks.stochastic_depth_step(elementwise)
    assert "whole branch" in capsys.readouterr().out
    assert not checks.stochastic_depth_step(lambda h, b, p, t: None)
    assert "not solved yet" in capsys.readouterr().out
    assert not checks.stochastic_depth_step(lambda h, b, p, t: h.foo)
    assert "AttributeError" in capsys.readouterr().out


def test_saved_bytes_of_block(capsys) -> None:
    assert checks.saved_bytes_of_block(lambda b, w: 2 * b * w * 4)
    assert not checks.saved_bytes_of_block(lambda b, w: 3 * b * w * 4)
    assert "counted once" in capsys.readouterr().out.replace("count it once", "counted once")
    assert not checks.saved_bytes_of_block(lambda b, w: 2 * b * w)
    assert "4 bytes" in capsys.readouterr().out
    assert not checks.saved_bytes_of_block(lambda b, w: None)
    assert "not solved yet" in capsys.readouterr().out
    assert not checks.saved_bytes_of_block(lambda b, w: "many")
    assert "should be a number" in capsys.readouterr().out


def test_fixup_scale(capsys) -> None:
    assert checks.fixup_scale(lambda n, m: n ** (-1 / (2 * m - 2)))
    assert not checks.fixup_scale(lambda n, m: n**-0.5)
    assert "only for m = 2" in capsys.readouterr().out
    assert not checks.fixup_scale(lambda n, m: n ** (-1 / (2 * m)))
    assert "2m − 2" in capsys.readouterr().out
    assert not checks.fixup_scale(lambda n, m: None)
    assert "not solved yet" in capsys.readouterr().out
    assert not checks.fixup_scale(lambda n, m: [][0])
    assert "IndexError" in capsys.readouterr().out
