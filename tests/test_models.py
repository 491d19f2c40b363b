"""Unit tests of skipflow.blocks and skipflow.models against hand-computed structure and closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from skipflow import blocks, models
from torch import nn


def n_linear(model: nn.Module) -> int:
    return sum(isinstance(m, nn.Linear) for m in model.modules())


@pytest.mark.parametrize("depth", [2, 4, 20, 56])
def test_plain_mlp_depth_counts_linear_layers(depth):
    net = models.plain_mlp(64, 10, depth, width=8)
    assert n_linear(net) == depth
    assert net.n_blocks == depth - 2
    assert net(torch.randn(3, 64)).shape == (3, 10)


@pytest.mark.parametrize("depth, order", [(4, "pre"), (20, "post"), (56, "pre")])
def test_residual_mlp_depth_counts_linear_layers(depth, order):
    net = models.residual_mlp(64, 10, depth, width=8, order=order)
    assert n_linear(net) == depth
    assert net.n_blocks == (depth - 2) // 2
    assert net(torch.randn(5, 64)).shape == (5, 10)


def test_residual_block_is_h_plus_branch():
    block = blocks.ResidualBlock(6, norm=None, order="pre").double()
    h = torch.randn(4, 6, dtype=torch.float64)
    assert torch.allclose(block(h), h + block.branch(h))
    post = blocks.ResidualBlock(6, norm=None, order="post").double()
    assert torch.allclose(post(h), torch.relu(h + post.branch(h)))


def test_branch_layouts_follow_the_orders():
    pre = blocks.ResidualBlock(4, norm="batch", order="pre")
    kinds = [type(m).__name__ for m in pre.branch]
    assert kinds == ["BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    post = blocks.ResidualBlock(4, norm="batch", order="post")
    kinds = [type(m).__name__ for m in post.branch]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]
    assert isinstance(post.after, nn.ReLU) and isinstance(pre.after, nn.Identity)


def test_zero_alpha_makes_the_block_an_identity():
    block = blocks.ResidualBlock(5, norm=None, order="pre", alpha=0.0, learnable_alpha=True)
    h = torch.randn(3, 5)
    assert torch.equal(block(h), h)
    assert any(p is block.alpha for p in block.parameters())  # ReZero: alpha is trained
    fixed = blocks.ResidualBlock(5, alpha=0.5)
    assert all(p is not fixed.alpha for p in fixed.parameters())  # a buffer, not a parameter


def test_conv_blocks_keep_the_shape():
    block = blocks.ResidualBlock(4, kind="conv", norm="layer")
    x = torch.randn(2, 4, 8, 8)
    assert block(x).shape == x.shape
    cnn = models.residual_cnn(6, channels=4)
    assert cnn(torch.randn(2, 1, 8, 8)).shape == (2, 10) and cnn.n_blocks == 2
    plain = models.plain_cnn(4, channels=4)
    assert plain(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_pre_activation_net_has_a_final_norm_activation():
    net = models.residual_mlp(10, 2, 6, width=4, order="pre")
    assert [type(m).__name__ for m in net.final] == ["BatchNorm1d", "ReLU"]
    assert isinstance(net.stem, nn.Linear)


def test_init_variances_match_their_formulas():
    fan_in, fan_out = 400, 300
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(fan_in, fan_out))
    models.init_weights(net, "xavier")
    var = float(net[0].weight.detach().var())
    # 120,000 samples: the sample variance is within a few percent of the true one
    assert var == pytest.approx(2 / (fan_in + fan_out), rel=0.03)
    models.init_weights(net, "kaiming")
    assert float(net[0].weight.detach().var()) == pytest.approx(2 / fan_in, rel=0.03)
    assert float(net[0].bias.detach().abs().max()) == 0.0
    default = nn.Linear(fan_in, fan_out)
    assert float(default.weight.detach().std()) == pytest.approx(models.default_init_std(fan_in), rel=0.03)


def test_count_parameters_by_hand():
    net = models.plain_mlp(3, 2, 3, width=4)  # 3*4+4 + 4*4+4 + 4*2+2
    assert models.count_parameters(net) == 16 + 20 + 10
    net.head.weight.requires_grad_(False)
    assert models.count_parameters(net) == 16 + 20 + 2
    with pytest.raises(TypeError, match="`model`"):
        models.count_parameters("net")


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda: models.plain_mlp(64, 10, 1), ValueError, "`depth` must be >= 2"),
        (lambda: models.plain_mlp(64, 10, 5, activation="swish"), ValueError, "`activation` must be one of"),
        (lambda: models.plain_mlp(64, 10, 5, norm="group"), ValueError, "`norm` must be one of"),
        (lambda: models.plain_mlp(64, 10, 5, init="he"), ValueError, "`init` must be one of"),
        (lambda: models.plain_mlp(64, 10, 5.0), TypeError, "`depth` must be an int"),
        (lambda: models.residual_mlp(64, 10, 5), ValueError, "multiple of `layers_per_block`"),
        (lambda: models.residual_mlp(64, 10, 6, order="middle"), ValueError, "`order` must be one of"),
        (lambda: models.residual_cnn(5), ValueError, "must be even"),
        (lambda: blocks.ResidualBlock(4, layers=0), ValueError, "`layers` must be >= 1"),
        (lambda: blocks.make_norm("batch", 4, kind="graph"), ValueError, "`kind` must be one of"),
    ],
)
def test_bad_arguments_name_the_argument(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_default_init_std_formula():
    assert models.default_init_std(12) == pytest.approx(1 / math.sqrt(36))
    with pytest.raises(ValueError, match="fan_in"):
        models.default_init_std(0)


def test_first_blocks_shares_the_modules_of_the_deep_net():
    from skipflow import orderings

    torch.manual_seed(0)
    deep = orderings.ordered_net(64, 10, 6, 16, "full_preact", norm=None)
    short = deep.first_blocks(2)
    assert short.n_blocks == 2 and short.head is deep.head and short.blocks[1] is deep.blocks[1]
    x = torch.randn(5, 64)
    expected = deep.head(deep.final(deep.blocks[1](deep.blocks[0](deep.stem(x)))))
    torch.testing.assert_close(short(x), expected, rtol=0, atol=0)
    assert deep.first_blocks(0).n_blocks == 0
    with pytest.raises(ValueError, match="between 0 and the 6"):
        deep.first_blocks(7)
    with pytest.raises(TypeError, match="`n`"):
        deep.first_blocks(2.0)
