"""skipflow.optim computes what torch.optim computes, update for update, without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from skipflow import optim


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))


def _train(net: torch.nn.Module, opt, steps: int = 25) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    for step in range(steps):
        x, y = torch.randn(16, 5, generator=gen), torch.randint(0, 3, (16,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        if step == 3:
            net[2].bias.grad = None  # a parameter without a gradient is left alone, state and all
        opt.step()
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda p: optim.SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
        (
            lambda p: optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
        ),
        (lambda p: optim.Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
        (
            lambda p: optim.Adam(p, lr=0.003, betas=(0.8, 0.98), eps=1e-6, weight_decay=0.01),
            lambda p: torch.optim.Adam(p, lr=0.003, betas=(0.8, 0.98), eps=1e-6, weight_decay=0.01),
        ),
    ],
)
def test_updates_equal_torch_optim(ours, theirs):
    a, b = _net(), _net()
    mine, reference = _train(a, ours(a.parameters())), _train(b, theirs(b.parameters()))
    for p, q in zip(mine, reference, strict=True):
        assert torch.equal(p, q)  # the same arithmetic in the same order: equal bit for bit
    assert not torch.equal(mine[0], _net()[0].weight)  # they did train


def test_warmup_changes_the_learning_rate_through_param_groups():
    net = _net()
    opt = optim.SGD(net.parameters(), lr=1.0)
    opt.param_groups[0]["lr"] = 0.0
    before = [p.detach().clone() for p in net.parameters()]
    net(torch.ones(2, 5)).sum().backward()
    opt.step()
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before, strict=True))


def test_bad_arguments_are_named():
    net = _net()
    with pytest.raises(ValueError, match="`params`"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="`lr`"):
        optim.SGD(net.parameters(), lr=-1.0)
    with pytest.raises(ValueError, match="`momentum`"):
        optim.SGD(net.parameters(), lr=0.1, momentum=1.5)
    with pytest.raises(TypeError, match="`betas`"):
        optim.Adam(net.parameters(), betas=0.9)


def test_no_compiler_import():
    code = (
        "import sys, torch, skipflow.optim as o\n"
        "p = torch.nn.Parameter(torch.ones(2)); opt = o.Adam([p]); p.sum().backward(); opt.step()\n"
        "print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
