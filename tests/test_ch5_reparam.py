"""Folding a linear residual branch into one layer (RepVGG-style) keeps the function and lowers the peak."""

from __future__ import annotations

import pytest
import torch
from skipflow import memory, reparam
from torch import nn


@pytest.mark.parametrize("inplace", [False, True])
def test_fold_keeps_the_function_and_removes_every_addition(inplace: bool) -> None:
    model = reparam.rep_mlp(8, 3, 5, width=6, inplace=inplace).eval()
    folded = reparam.fold(model).eval()
    x = torch.randn(4, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), folded(x), atol=1e-5)
    assert not any(isinstance(m, reparam.RepBlock) for m in folded.modules())
    linears = [m for m in folded if isinstance(m, nn.Linear)]
    assert len(linears) == 2 + 5  # stem, one layer per block, head
    block = model[2]
    assert torch.allclose(linears[1].weight, block.linear.weight + torch.eye(6))


def test_fold_lowers_the_inference_peak_by_one_activation() -> None:
    model = reparam.rep_mlp(8, 3, 4, width=16).eval()
    x = torch.randn(32, 8)
    unit = 32 * 16 * 4
    skip, folded = (memory.eager_peak_bytes(m, x) / unit for m in (model, reparam.fold(model).eval()))
    assert skip - folded == pytest.approx(1.0, abs=0.05)


def test_fold_does_not_touch_the_original_and_validates() -> None:
    model = reparam.rep_mlp(8, 3, 2, width=4)
    before = model[2].linear.weight.clone()
    reparam.fold(model)
    assert torch.equal(model[2].linear.weight, before)
    with pytest.raises(TypeError, match=r"nn\.Sequential"):
        reparam.fold(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="n_blocks"):
        reparam.rep_mlp(8, 3, 0)
