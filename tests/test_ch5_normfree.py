"""Tests of skipflow.normfree, skipflow.stochastic_depth, skipflow.pruning and skipflow.timing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skipflow import data, models, normfree, pruning, timing
from skipflow import stochastic_depth as sd
from torch import nn


def test_unprotected_variance_roughly_doubles_and_fixes_bound_it() -> None:
    torch.manual_seed(0)
    x = torch.randn(256, 64)
    v = normfree.stream_variances(normfree.build("none", 12), x)
    ratio = float((v[1:] / v[:-1]).log().mean().exp())
    assert 1.6 < ratio < 2.3
    torch.manual_seed(0)
    v_sqrt = normfree.stream_variances(normfree.build("sqrt_depth", 12), x)
    assert float(v_sqrt.max() / v_sqrt[0]) < 1.5 * math.e
    for fix in ("rezero", "fixup"):
        torch.manual_seed(0)
        v_fix = normfree.stream_variances(normfree.build(fix, 12), x)
        assert torch.allclose(v_fix, v_fix[0].expand_as(v_fix))


def test_fixup_zeroes_last_layer_and_scales_the_others() -> None:
    torch.manual_seed(0)
    net = models.residual_mlp(8, 2, 2 + 3 * 4, 8, norm=None, layers_per_block=3)
    before = [[w.weight.clone() for w in normfree.branch_weight_layers(b)] for b in net.blocks]
    head_before = net.head.weight.clone()
    normfree.fixup_init(net)
    factor = 4 ** (-1 / (2 * 3 - 2))
    for block, weights in zip(net.blocks, before, strict=True):
        layers = normfree.branch_weight_layers(block)
        for layer, w0 in zip(layers[:-1], weights[:-1], strict=True):  # every layer but the last
            assert torch.allclose(layer.weight, w0 * factor)
        assert torch.count_nonzero(layers[-1].weight) == 0
        assert all(torch.count_nonzero(layer.bias) == 0 for layer in layers)
    # Fixup's rule 1: the classification layer starts at zero too.
    assert torch.count_nonzero(net.head.weight) == 0 and torch.count_nonzero(net.head.bias) == 0
    assert torch.count_nonzero(head_before) > 0
    # zero_head=False keeps the head as it was.
    torch.manual_seed(0)
    kept = normfree.fixup_init(models.residual_mlp(8, 2, 2 + 3 * 4, 8, norm=None, layers_per_block=3), False)
    assert torch.allclose(kept.head.weight, head_before)


def test_rezero_alpha_is_a_learnable_zero() -> None:
    net = normfree.build("rezero", 3)
    alphas = [b.alpha for b in net.blocks]
    assert all(isinstance(a, nn.Parameter) and float(a.detach()) == 0.0 for a in alphas)


def test_build_and_helpers_validate_arguments() -> None:
    with pytest.raises(ValueError, match="fix"):
        normfree.build("layernorm", 3)
    with pytest.raises(ValueError, match="ResidualBlock"):
        normfree.fixup_init(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="`x`"):
        normfree.mean_squared_singular_value(normfree.build("rezero", 2), torch.randn(64))


def test_mean_squared_singular_value_of_identity_like_net() -> None:
    torch.manual_seed(0)
    net = normfree.build("rezero", 2, in_features=4, out_features=4, width=4)
    x = torch.randn(3, 4)
    value = normfree.mean_squared_singular_value(net, x)
    # With α = 0 the net is head∘final∘stem; for a square Jacobian the mean of σ_i² is ‖J‖_F² / 4.
    net.eval()
    expected = [
        torch.autograd.functional.jacobian(lambda v: net(v.unsqueeze(0)).squeeze(0), row).pow(2).sum() / 4
        for row in x
    ]
    assert math.isclose(value, float(torch.stack(expected).mean()), rel_tol=1e-5)


def test_stochastic_depth_rule_and_wrapper() -> None:
    h = torch.randn(3, 4)

    def branch(v: torch.Tensor) -> torch.Tensor:
        return v + 1

    assert torch.allclose(sd.stochastic_depth_forward(h, branch, 0.25, False), h + 0.25 * branch(h))
    torch.manual_seed(0)
    outs = [sd.stochastic_depth_forward(h, branch, 0.5, True) for _ in range(200)]
    kept = sum(torch.allclose(o, h + branch(h)) for o in outs)
    assert all(torch.allclose(o, h) or torch.allclose(o, h + branch(h)) for o in outs)
    assert 60 < kept < 140
    assert sd.linear_decay(4, 0.5) == [0.875, 0.75, 0.625, 0.5]
    net = sd.add_stochastic_depth(models.residual_mlp(8, 2, 10, 8), 0.5)
    assert all(isinstance(b, sd.StochasticDepthBlock) for b in net.blocks)
    assert net.blocks[-1].survival == 0.5
    with pytest.raises(ValueError, match="p_last"):
        sd.linear_decay(3, 0.0)


def test_without_block_deletes_one_block_and_keeps_the_original() -> None:
    net = models.residual_mlp(8, 2, 10, 8)
    smaller = sd.without_block(net, 1)
    assert len(smaller.blocks) == 3 and len(net.blocks) == 4
    with pytest.raises(ValueError, match="index"):
        sd.without_block(net, 4)
    split = data.make_regression(n_train=8, n_test=8, in_features=8)
    labels = data.Split(
        split.x_train, torch.zeros(8, dtype=torch.int64), split.x_test, torch.zeros(8, dtype=torch.int64), 2
    )
    assert sd.deletion_accuracies(net, labels).shape == (4,)


def test_pruning_legal_strategies_keep_shapes_and_naive_one_breaks() -> None:
    torch.manual_seed(0)
    net = models.residual_mlp(8, 3, 2 + 2 * 3, 16, norm="batch").eval()
    x = torch.randn(5, 8)
    for strategy in pruning.STRATEGIES:
        pruned = pruning.prune(net, strategy, 6).eval()
        assert pruned(x).shape == (5, 3)
        assert models.count_parameters(pruned) < models.count_parameters(net)
    # Keeping every unit changes nothing.
    assert torch.allclose(pruning.prune(net, "stream", 16).eval()(x), net(x), atol=1e-6)
    assert torch.allclose(pruning.prune(net, "inner", 16).eval()(x), net(x), atol=1e-6)
    naive = pruning.prune(net, "inner", 16)
    naive.blocks[0].branch[5] = pruning.prune_linear(naive.blocks[0].branch[5], keep_out=torch.arange(8))
    with pytest.raises(RuntimeError):
        naive(x)


def test_matching_inner_width_matches_parameter_count() -> None:
    torch.manual_seed(0)
    net = models.residual_mlp(8, 3, 2 + 2 * 3, 16, norm="batch")
    target = models.count_parameters(pruning.prune(net, "stream", 8))
    k = pruning.matching_inner_width(net, target)
    got = models.count_parameters(pruning.prune(net, "inner", k))
    step = models.count_parameters(pruning.prune(net, "inner", min(k + 1, 16))) - got
    assert abs(got - target) <= max(step, 1)
    with pytest.raises(ValueError, match="n_keep"):
        pruning.prune(net, "stream", 17)
    with pytest.raises(ValueError, match="strategy"):
        pruning.prune(net, "random", 4)
    with pytest.raises(TypeError, match="residual_mlp"):
        pruning.prune(models.plain_mlp(8, 3, 4), "inner", 4)


def test_interleaved_timing_and_summary() -> None:
    times = timing.interleaved({"a": lambda: sum(range(100)), "b": lambda: None}, repeats=5, number=3)
    assert set(times) == {"a", "b"} and all(len(v) == 5 and (v > 0).all() for v in times.values())
    assert timing.summarize(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == (3.0, 2.0, 4.0)
    with pytest.raises(TypeError, match="fns"):
        timing.interleaved({})
    with pytest.raises(ValueError, match="values"):
        timing.summarize(np.array([]))
