"""Reversible residual blocks: exact inverses, gradients equal to ordinary autograd, memory flat in depth."""

from __future__ import annotations

import copy

import pytest
import torch
from skipflow import memory, reversible


def test_the_inverse_reconstructs_the_input() -> None:
    torch.manual_seed(0)
    block = reversible.ReversibleBlock(4)
    x = torch.randn(3, 8)
    with torch.no_grad():
        assert torch.allclose(block.inverse(block(x)), x, atol=1e-5)


def test_gradients_match_ordinary_autograd() -> None:
    x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
    saving = reversible.rev_mlp(8, 3, 5, width=6)
    plain = copy.deepcopy(saving)
    plain[1].memory_saving = False
    for model in (saving, plain):
        torch.nn.functional.cross_entropy(model(x), y).backward()
    for p, q in zip(saving.parameters(), plain.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-5, rtol=1e-4)


def test_saved_bytes_do_not_grow_with_depth() -> None:
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    unit = 32 * 8 * 4
    saving = [memory.saved_bytes(reversible.rev_mlp(8, 3, n, width=8), x, y) / unit for n in (2, 6)]
    ordinary = [
        memory.saved_bytes(reversible.rev_mlp(8, 3, n, width=8, memory_saving=False), x, y) / unit
        for n in (2, 6)
    ]
    assert saving[0] == saving[1]
    assert ordinary[1] - ordinary[0] == pytest.approx(4 * 2.0)  # 4 half-width Linear inputs per block


def test_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="even"):
        reversible.ReversibleStack(5, 2)
    with pytest.raises(ValueError, match="n_blocks"):
        reversible.ReversibleStack(4, 0)
