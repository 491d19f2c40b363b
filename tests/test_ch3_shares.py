"""Signed shares, the weight-gradient decomposition, sampling on equal terms, and iterative refinement."""

from __future__ import annotations

import math

import pytest
import torch
from skipflow import models, paths, refinement
from torch import nn


def _net(order: str, n_blocks: int, norm: str | None, seed: int, alpha: float = 1.0) -> nn.Module:
    torch.manual_seed(seed)
    net = models.residual_mlp(
        5, 3, depth=2 + 2 * n_blocks, width=7, order=order, norm=norm, alpha=alpha
    ).double()
    if norm == "batch":  # non-trivial running statistics
        net.train()
        with torch.no_grad():
            for _ in range(3):
                net(torch.randn(32, 5, dtype=torch.float64) * 2 + 0.5)
    return net.eval()


def _batch(seed: int = 0, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=gen, dtype=torch.float64), torch.randint(0, 3, (n,), generator=gen)


def test_signed_shares_sum_to_one_and_project_on_the_gradient():
    net = _net("pre", 5, "batch", seed=1)
    x, y = _batch()
    a = paths.gradient_by_path_length(net, x, y)
    c = paths.signed_shares(a)
    assert c.dtype == torch.float64 and len(c) == 6
    assert float(c.sum()) == pytest.approx(1.0, abs=1e-12)
    g = a.sum(0).flatten()
    assert float(c[2]) == pytest.approx(float(a[2].flatten() @ g / (g @ g)), rel=1e-10)
    with pytest.raises(ValueError, match="zero"):
        paths.signed_shares(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="a"):
        paths.signed_shares(torch.ones(3))


def test_shortest_share_range_handles_negative_shares():
    assert paths.shortest_share_range([0.5, 0.45, 0.05], mass=0.9) == (0, 1)
    assert paths.shortest_share_range([0.1, 0.6, 0.5, -0.2], mass=0.9) == (1, 2)
    assert paths.shortest_share_range([0.3, 0.3, 0.3, 0.1], mass=0.9) == (0, 2)  # ties: shorter lengths
    with pytest.raises(ValueError, match="no range"):
        paths.shortest_share_range([0.2, 0.2], mass=0.9)
    with pytest.raises(ValueError, match="mass"):
        paths.shortest_share_range([1.0], mass=0.0)


@pytest.mark.parametrize("order", ["pre", "post"])
@pytest.mark.parametrize("norm", [None, "batch"])
def test_weight_gradient_by_path_length_sums_to_autograd(order, norm):
    n = 4
    net = _net(order, n, norm, seed=3)
    x, y = _batch(1)
    rows = paths.weight_gradient_by_path_length(net, x, y)
    assert len(rows) == n
    net.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    for i, block in enumerate(net.blocks):
        reference = torch.cat([p.grad.flatten() for p in block.branch.parameters()])
        assert rows[i].shape == (n + 1, reference.numel())
        assert torch.allclose(rows[i].sum(0), reference, rtol=1e-10, atol=1e-13)
        assert float(rows[i][0].abs().max()) == 0.0  # every path to θ_l enters F_l
        assert float(rows[i][n - i + 1 :].abs().sum()) == 0.0  # at most n − i branches
    shares = paths.weight_shares(rows)
    assert float(shares.sum()) == pytest.approx(1.0, abs=1e-12)


def test_weight_decomposition_of_the_last_block_is_a_single_length():
    net = _net("pre", 3, None, seed=5)
    x, y = _batch(2)
    rows = paths.weight_gradient_by_path_length(net, x, y)
    last = rows[-1]
    assert float(last[2:].abs().max()) == 0.0 and float(last[1].abs().max()) > 0  # only F_L itself


def test_sampling_convergence_is_exact_when_it_enumerates_and_shrinks_with_budget():
    net = _net("pre", 6, None, seed=7)
    x, y = _batch(3)
    a = paths.gradient_by_path_length(net, x, y)
    curve = paths.sampling_convergence(net, x, y, a, budgets=(3, 20), seed=0, chunk_size=4)
    assert curve.budgets.tolist() == [3, 20]
    assert bool(curve.enumerated[1].all())  # C(6, k) ≤ 20 for every k: all enumerated
    assert float(curve.total_error[1]) < 1e-10 and float(curve.gradient_error[1]) < 1e-10
    assert not bool(curve.enumerated[0, 3])  # C(6, 3) = 20 > 3: sampled
    assert float(curve.errors[0, 0]) < 1e-10  # one path of length 0: exact at any budget
    assert float(curve.total_error[0]) > 1e-6
    assert bool((curve.seconds > 0).all())
    assert curve.budget_for(0.1) == 20
    assert curve.budget_for(1e-20, lengths=[3]) is None
    with pytest.raises(ValueError, match="rows"):
        paths.sampling_convergence(net, x, y, a[:3], budgets=(3,))


def test_sampling_estimate_is_unbiased_on_average():
    net = _net("pre", 8, None, seed=9)
    x, y = _batch(4)
    a = paths.gradient_by_path_length(net, x, y)
    k = 4  # C(8, 4) = 70 paths, sampled 10 at a time
    estimates = torch.stack(
        [paths.sampling_convergence(net, x, y, a, budgets=(10,), seed=s).errors[0, k] for s in range(3)]
    )
    single = float(estimates.mean())
    pooled = paths.sampling_convergence(net, x, y, a, budgets=(10, 60), seed=11).errors[:, k]
    assert single > 0 and float(pooled[1]) < float(pooled[0])  # 6× the samples: a smaller error
    assert math.isfinite(single)


def test_block_refinement_first_order_cost_matches_removing_the_change():
    net = _net("pre", 4, None, seed=2, alpha=0.01)  # small changes: first order is accurate
    x, y = _batch(5, n=16)
    ref = refinement.block_refinement(net, x, y)
    assert ref.cosine.shape == (4,) and bool((ref.cosine.abs() <= 1 + 1e-9).all())
    # remove block 2's change from h_2 and run the rest: the exact cost of undoing that step
    with torch.no_grad():
        h = net.stem(x)
        for block in net.blocks[:2]:
            h = block(h)
        h_out = net.blocks[2](h)
        costs = []
        for start in (h_out, h):
            z = start
            for block in net.blocks[3:]:
                z = block(z)
            costs.append(nn.functional.cross_entropy(net.head(net.final(z)), y))
    exact = float(costs[1] - costs[0])
    assert float(ref.first_order_cost[2]) == pytest.approx(exact, rel=0.05)
    assert not any(p.grad is not None for p in net.parameters())  # the caller's model is left clean


def test_block_refinement_descending_share_counts_examples_by_sign():
    net = _net("pre", 3, None, seed=4)
    x, y = _batch(7, n=12)
    ref = refinement.block_refinement(net, x, y)
    assert ref.descending_share.shape == (3,)
    # recompute block 1's per-example inner products ⟨g_1, Δ_1⟩ by hand
    h0 = net.stem(x).detach()
    h1 = net.blocks[0](h0).detach().requires_grad_(True)
    z = h1
    for block in net.blocks[1:]:
        z = block(z)
    (g1,) = torch.autograd.grad(nn.functional.cross_entropy(net.head(net.final(z)), y), h1)
    inner = (g1 * (h1 - h0)).sum(1).detach()
    assert float(ref.descending_share[0]) == pytest.approx(float((inner < 0).double().mean()))
    assert float(ref.first_order_cost[0]) == pytest.approx(-float(inner.sum()), rel=1e-5, abs=1e-9)


def test_block_refinement_validates():
    with pytest.raises(ValueError, match="pre-activation"):
        refinement.block_refinement(_net("post", 2, None, seed=0), *_batch())
    with pytest.raises(TypeError, match="model"):
        refinement.block_refinement(nn.Linear(5, 3), *_batch())


def test_written_out_weight_vjp_equals_torch_func(monkeypatch):
    # weight_gradient_by_path_length's fast path (parameter VJPs written out) against its torch.func path.
    net = _net("pre", 4, "batch", seed=5)
    x, y = _batch(2)
    fast = paths.weight_gradient_by_path_length(net, x, y)
    monkeypatch.setattr(paths, "_chain_param_vjp", lambda module, h: None)
    slow = paths.weight_gradient_by_path_length(net, x, y)
    assert len(fast) == len(slow) == 4
    for f, s in zip(fast, slow, strict=True):
        assert f.shape == s.shape
        assert torch.allclose(f, s, rtol=1e-10, atol=1e-13)
    net.train()  # training-mode BatchNorm is not a written-out chain
    assert paths._chain_param_vjp(net.blocks[0].branch, x.new_zeros(2, 7)) is None
