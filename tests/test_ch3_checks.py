"""Chapter 3's checkers accept the reference, reject plausible mistakes with a hint, and never raise."""

from __future__ import annotations

import copy
import math

import torch
from skipflow import checks
from torch import nn


def test_count_paths_of_length(capsys):
    assert checks.count_paths_of_length(lambda n, k: math.comb(n, k))
    assert not checks.count_paths_of_length(lambda n, k: 2**n)
    assert "*all* paths" in capsys.readouterr().out
    assert not checks.count_paths_of_length(lambda n, k: n**k)
    assert "do not count orderings" in capsys.readouterr().out
    assert not checks.count_paths_of_length(lambda n, k: None)
    assert "not solved yet" in capsys.readouterr().out
    assert not checks.count_paths_of_length(lambda n, k: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out


def _good(net, i):
    new = copy.deepcopy(net)
    new.blocks = nn.ModuleList([b for j, b in enumerate(new.blocks) if j != i])
    return new


def _mutating(net, i):
    del net.blocks[i]
    return net


def _off_by_one(net, i):
    new = copy.deepcopy(net)
    del new.blocks[(i + 1) % len(new.blocks)]
    return new


def test_delete_block(capsys):
    assert checks.delete_block(_good)
    assert not checks.delete_block(_mutating)
    assert "changed the original network" in capsys.readouterr().out
    assert not checks.delete_block(_off_by_one)
    assert "missing block" in capsys.readouterr().out
    assert not checks.delete_block(lambda net, i: net)
    assert "should leave" in capsys.readouterr().out
    assert not checks.delete_block(lambda net, i: None)
    assert "not solved yet" in capsys.readouterr().out
    assert not checks.delete_block(lambda net, i: net.nonexistent)
    assert "AttributeError" in capsys.readouterr().out


def _step(a, vjp):
    return [a[0]] + [a[k] + vjp(a[k - 1]) for k in range(1, len(a))] + [vjp(a[-1])]


def _in_place_low_to_high(a, vjp):
    a = [*a, torch.zeros_like(a[0])]
    for k in range(1, len(a)):
        a[k] = a[k] + vjp(a[k - 1])
    return a


def _no_skip(a, vjp):
    return [a[0]] + [vjp(a[k - 1]) for k in range(1, len(a) + 1)]


def _no_growth(a, vjp):
    return [a[0]] + [a[k] + vjp(a[k - 1]) for k in range(1, len(a))]


def test_path_recursion_step(capsys):
    assert checks.path_recursion_step(_step)
    assert not checks.path_recursion_step(_in_place_low_to_high)
    assert "high k to low" in capsys.readouterr().out
    assert not checks.path_recursion_step(_no_skip)
    assert "skip the block" in capsys.readouterr().out
    assert not checks.path_recursion_step(_no_growth)
    assert "one longer" in capsys.readouterr().out
    assert not checks.path_recursion_step(lambda a, vjp: None)
    assert "not solved yet" in capsys.readouterr().out
    assert not checks.path_recursion_step(lambda a, vjp: a[5])
    assert "IndexError" in capsys.readouterr().out
