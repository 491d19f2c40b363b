"""Unit tests of skipflow.paths: path counts, the forward expansion, and the exact gradient decomposition."""

from __future__ import annotations

import math

import pytest
import torch
from skipflow import models, paths
from torch import nn


def test_counts_and_distribution():
    assert paths.count_paths(54) == 2**54
    assert paths.count_paths(3, 2) == 3
    assert paths.count_paths(3, 5) == 0
    dist = paths.path_length_distribution(10)
    assert dist.dtype == torch.float64 and len(dist) == 11
    assert abs(float(dist.sum()) - 1) < 1e-12
    assert len(paths.enumerate_paths(4)) == 16


def test_veit_share_for_54_blocks():
    share = paths.fraction_of_paths(54, 19, 35)
    exact = sum(math.comb(54, k) for k in range(19, 36)) / 2**54
    assert share == pytest.approx(exact, rel=1e-15)
    assert share > 0.95  # Veit et al.: "more than 95% of paths go through 19 to 35 modules"
    assert paths.fraction_of_paths(7, 0, 7) == 1.0


def test_validation_names_the_argument():
    with pytest.raises(ValueError, match="lo"):
        paths.fraction_of_paths(5, 4, 2)
    with pytest.raises(TypeError, match="n_blocks"):
        paths.count_paths(3.0)
    with pytest.raises(ValueError, match="n_blocks"):
        paths.draw_unraveled(9)
    with pytest.raises(ValueError, match="mass"):
        paths.effective_lengths([1.0, 2.0], mass=1.5)
    with pytest.raises(TypeError, match="model"):
        paths.gradient_by_path_length(
            models.plain_mlp(4, 2, depth=4), torch.randn(3, 4), torch.tensor([0, 1, 0])
        )
    with pytest.raises(ValueError, match="at"):
        net = models.residual_mlp(4, 2, depth=4)
        paths.gradient_by_path_length(net, torch.randn(3, 4), torch.tensor([0, 1, 0]), at="output")


def _branches(linear: bool, seed: int, width: int = 6, n: int = 3) -> list[nn.Module]:
    torch.manual_seed(seed)
    if linear:
        return [nn.Linear(width, width, bias=False).double() for _ in range(n)]
    return [
        nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, width)).double() for _ in range(n)
    ]


@pytest.mark.parametrize("n", [1, 3, 5])
def test_forward_expansion_exact_for_linear_branches(n):
    x = torch.randn(4, 6, dtype=torch.float64)
    branches = _branches(True, seed=n, n=n)
    with torch.no_grad():
        assert torch.allclose(
            paths.unrolled_sum(branches, x), paths.residual_forward(branches, x), atol=1e-12
        )


def test_forward_expansion_not_exact_for_nonlinear_branches():
    x = torch.randn(4, 6, dtype=torch.float64)
    branches = _branches(False, seed=0)
    with torch.no_grad():
        err = (paths.unrolled_sum(branches, x) - paths.residual_forward(branches, x)).norm()
    assert err > 1e-3


def test_path_jacobians_sum_to_the_jacobian_for_nonlinear_branches():
    branches = _branches(False, seed=1, n=4)
    x = torch.randn(6, dtype=torch.float64)
    jacs = paths.branch_jacobians(branches, x)
    expanded = sum(paths.path_jacobian(jacs, p) for p in paths.enumerate_paths(4))
    full = torch.autograd.functional.jacobian(lambda v: paths.residual_forward(branches, v), x)
    assert torch.allclose(expanded, full, atol=1e-12)


def test_recursion_step_matches_expansion():
    jac = torch.randn(3, 3, dtype=torch.float64)
    a = [torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)]
    new = paths.recursion_step(a, lambda v: v @ jac)
    assert len(new) == 3
    assert torch.allclose(new[0], a[0])
    assert torch.allclose(new[1], a[1] + a[0] @ jac)
    assert torch.allclose(new[2], a[1] @ jac)
    with pytest.raises(ValueError, match="a"):
        paths.recursion_step([], lambda v: v)


def _random_net(order: str, n_blocks: int, norm: str | None, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = models.residual_mlp(5, 3, depth=2 + 2 * n_blocks, width=7, order=order, norm=norm).double()
    if norm == "batch":  # give BatchNorm non-trivial running statistics
        net.train()
        with torch.no_grad():
            for _ in range(3):
                net(torch.randn(32, 5, dtype=torch.float64) * 2 + 0.5)
    return net


@pytest.mark.parametrize("order", ["pre", "post"])
@pytest.mark.parametrize("n_blocks", [1, 2, 5, 9])
@pytest.mark.parametrize("norm", [None, "batch"])
def test_exact_decomposition_equals_autograd(order, n_blocks, norm):
    net = _random_net(order, n_blocks, norm, seed=n_blocks)
    x = torch.randn(6, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (6,))
    for at in ("input", "stream"):
        a = paths.gradient_by_path_length(net, x, y, at=at)
        assert a.shape[0] == n_blocks + 1
        ref = paths.autograd_gradient(net, x, y, at=at)
        assert torch.allclose(a.sum(0), ref, rtol=1e-10, atol=1e-13)


def test_decomposition_restores_training_mode_and_handles_alpha():
    torch.manual_seed(0)
    net = models.residual_mlp(5, 3, depth=8, width=7, norm=None, alpha=0.3).double().train()
    x, y = torch.randn(4, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    a = paths.gradient_by_path_length(net, x, y)
    assert net.training
    assert torch.allclose(a.sum(0), paths.autograd_gradient(net, x, y), atol=1e-13)


def test_first_and_last_lengths_are_single_paths():
    net = _random_net("post", 4, None, seed=3)
    x, y = torch.randn(3, 5, dtype=torch.float64), torch.tensor([0, 1, 2])
    a = paths.gradient_by_path_length(net, x, y)
    prof = paths.exact_profile(a)
    assert prof.per_path[0] == pytest.approx(float(prof.total[0]))
    assert prof.per_path[-1] == pytest.approx(float(prof.total[-1]))


@pytest.mark.parametrize("order", ["pre", "post"])
def test_sampling_agrees_with_exact_when_it_enumerates(order):
    net = _random_net(order, 5, None, seed=7)
    x, y = torch.randn(4, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 1])
    a = paths.gradient_by_path_length(net, x, y)
    sampled = paths.sample_path_gradients(net, x, y, samples_per_k=10, chunk_size=3)  # C(5, k) <= 10
    assert bool(sampled.exact_k.all())
    assert torch.allclose(sampled.estimate, a, atol=1e-12)
    exact = paths.exact_profile(a)
    assert bool((exact.total <= sampled.total * (1 + 1e-12)).all())  # norm of sum <= sum of norms


def test_sampling_is_seeded_and_samples_when_paths_are_many():
    net = _random_net("pre", 8, None, seed=2)
    x, y = torch.randn(4, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 1])
    s1 = paths.sample_path_gradients(net, x, y, samples_per_k=5, seed=4)
    s2 = paths.sample_path_gradients(net, x, y, samples_per_k=5, seed=4)
    assert torch.equal(s1.per_path, s2.per_path)
    assert not bool(s1.exact_k[4])  # C(8, 4) = 70 > 5: sampled
    assert bool(s1.exact_k[0]) and bool(s1.exact_k[8])
    with pytest.raises(ValueError, match="samples_per_k"):
        paths.sample_path_gradients(net, x, y, samples_per_k=0)


def test_effective_lengths():
    assert paths.effective_lengths([0.0, 5.0, 4.0, 1.0, 0.0], mass=0.95) == (1, 3)
    assert paths.effective_lengths([0.0, 5.0, 4.0, 1.0, 0.0], mass=0.9) == (1, 2)
    assert paths.effective_lengths([1.0, 0.0, 0.0], mass=0.5) == (0, 0)
    with pytest.raises(ValueError, match="total"):
        paths.effective_lengths([-1.0, 2.0])


def test_draw_unraveled_makes_a_figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = paths.draw_unraveled(3)
    assert len(fig.axes) == 2
    plt.close(fig)


@pytest.mark.parametrize("order", ["pre", "post"])
def test_written_out_vjp_equals_autograd_for_stacked_cotangents(order):
    # The fast path of the path recursion and of sampling: a chain's VJP by broadcasting, instead of vmap.
    from torch.func import vjp

    torch.manual_seed(3)
    net = models.residual_mlp(5, 3, depth=8, width=7, order=order, norm="batch").double()
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(32, 5, dtype=torch.float64) * 2 + 0.5)  # non-trivial running statistics
    net.eval()
    h = torch.randn(6, 7, dtype=torch.float64)
    v = torch.randn(4, 6, 7, dtype=torch.float64)  # 4 cotangents (paths) at once
    for module in [net.blocks[0].branch, net.blocks[1].after, net.stem]:
        inp = h if module is not net.stem else torch.randn(6, 5, dtype=torch.float64)
        out, fast = paths._chain_vjp(module, inp)
        ref_out, ref_fn = vjp(module, inp)
        assert isinstance(fast, paths._ChainVJP)
        assert torch.equal(out, ref_out)
        expected = torch.stack([ref_fn(c)[0] for c in v])
        assert torch.allclose(paths._batched(fast, v), expected, rtol=1e-12, atol=1e-14)
    # anything else falls back to autograd's vjp: training-mode BatchNorm, other activations, LayerNorm
    net.train()
    assert paths._chain_vjp(net.blocks[0].branch, h) is None
    assert paths._chain_vjp(nn.Sequential(nn.Linear(7, 7).double(), nn.Tanh()), h) is None
    assert paths._chain_vjp(nn.LayerNorm(7).double(), h) is None
