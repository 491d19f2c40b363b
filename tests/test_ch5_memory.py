"""Tests of skipflow.memory: saved bytes, live-byte tracking, the early-freeing executor, checkpointing."""

from __future__ import annotations

import pytest
import torch
from skipflow import memory, models
from torch import nn


@pytest.fixture
def xy() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(32, 16), torch.randint(0, 10, (32,))


def test_saved_bytes_of_linear_relu_linear_counts_each_storage_once() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
    # Linear saves its input (x), ReLU its output, which the second Linear saves again: 2 tensors.
    assert memory.saved_bytes(net, torch.randn(5, 8)) == 2 * 5 * 8 * 4


def test_saved_bytes_can_include_the_parameters() -> None:
    net = nn.Linear(8, 4)
    x = torch.randn(3, 8, requires_grad=True)  # then the weight is saved too (for the input's gradient)
    assert memory.saved_bytes(net, x, include_state=True) == memory.saved_bytes(net, x) + 8 * 4 * 4


def test_plain_and_residual_save_the_same_bytes(xy: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = xy
    for norm in (None, "batch"):
        plain = models.plain_mlp(16, 10, 10, 32, norm=norm)
        residual = models.residual_mlp(16, 10, 10, 32, norm=norm)
        assert memory.saved_bytes(plain, x, y) == memory.saved_bytes(residual, x, y)


def test_live_bytes_follows_allocations_and_frees() -> None:
    with torch.no_grad(), memory.LiveBytes() as mem:
        a = torch.ones(100)  # 400 bytes
        b = a * 2  # another 400
        del a
        c = b.view(10, 10)  # a view: no new memory
        assert mem.current == 400
    assert mem.peak == 800
    assert c.shape == (10, 10)


def test_early_freeing_shows_one_extra_activation_for_residual(xy: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, _ = xy
    unit = 32 * 32 * 4
    for depth in (6, 14):
        plain = models.plain_mlp(16, 10, depth, 32).eval()
        residual = models.residual_mlp(16, 10, depth, 32, norm=None).eval()
        out, peak_r = memory.run_freeing_early(residual, x)
        _, peak_p = memory.run_freeing_early(plain, x)
        assert torch.allclose(out, residual(x))
        assert peak_r - peak_p == unit
        assert memory.eager_peak_bytes(plain, x) == memory.eager_peak_bytes(residual, x)


def test_checkpointing_keeps_the_function_and_gradients_and_saves_memory(
    xy: tuple[torch.Tensor, torch.Tensor],
) -> None:
    x, y = xy
    torch.manual_seed(0)
    net = models.residual_mlp(16, 10, 2 + 2 * 8, 32, norm=None)
    ck = memory.checkpoint_blocks(net, 2)
    assert torch.allclose(ck(x), net(x))
    nn.functional.cross_entropy(net(x), y).backward()
    g_plain = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    nn.functional.cross_entropy(ck(x), y).backward()
    for g, p in zip(g_plain, net.parameters(), strict=True):
        assert torch.allclose(g, p.grad, atol=1e-6)
    full = memory.training_step_bytes(net, x, y)
    part = memory.training_step_bytes(ck, x, y)
    assert part["after_forward"] < full["after_forward"]
    assert full["peak"] >= full["after_forward"]


def test_argument_validation() -> None:
    net = models.residual_mlp(16, 10, 6, 32)
    with pytest.raises(TypeError, match="model"):
        memory.saved_bytes("not a model", torch.randn(2, 16))
    with pytest.raises(TypeError, match="`x`"):
        memory.saved_bytes(net, [1, 2])
    with pytest.raises(ValueError, match="segments"):
        memory.checkpoint_blocks(net, 5)
    with pytest.raises(TypeError, match="net"):
        memory.checkpoint_blocks(nn.Linear(2, 2), 1)
