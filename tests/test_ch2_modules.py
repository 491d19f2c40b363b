"""Unit tests of chapter 2's modules: diagrams, handmade, jacobians, shortcuts, pitfalls."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
from skipflow import data, diagrams, handmade, jacobians, pitfalls, shortcuts

F64 = torch.float64


# ---------------------------------------------------------------- diagrams
@pytest.mark.parametrize("kind", sorted(diagrams.BLOCKS))
def test_draw_block_draws_every_label(kind):
    ax = diagrams.draw_block(kind)
    texts = {t.get_text() for t in ax.texts}
    labels, skip, after = diagrams.BLOCKS[kind]
    assert set(labels) <= texts and set(after) <= texts
    assert ("+" in texts) == skip
    assert ax.get_title() == kind
    plt.close("all")


def test_draw_stack_custom_labels_and_validation():
    ax = diagrams.draw_stack(["a", "b"], skip_label="1×1 conv", after=["ReLU"], title="t")
    assert {"a", "b", "ReLU", "1×1 conv", "+"} <= {t.get_text() for t in ax.texts}
    with pytest.raises(TypeError, match="`labels`"):
        diagrams.draw_stack("Linear")
    with pytest.raises(ValueError, match="`labels`"):
        diagrams.draw_stack([])
    with pytest.raises(TypeError, match="`after`"):
        diagrams.draw_stack(["a"], after=[1])
    with pytest.raises(ValueError, match="`kind`"):
        diagrams.draw_block("resnet")
    plt.close("all")


def test_diagram_colours_follow_the_plot_colours_and_limits_can_be_shared():
    from matplotlib.colors import to_hex
    from skipflow.plots import COLORS

    def plus_colour(ax):
        return next((to_hex(t.get_color()) for t in ax.texts if t.get_text() == "+"), None)

    _, axes = plt.subplots(1, 3)
    for ax, kind in zip(axes, ("plain", "identity", "post"), strict=True):
        diagrams.draw_block(kind, ax)
    assert [plus_colour(ax) for ax in axes] == [None, COLORS["residual"], COLORS["post"]]
    assert plus_colour(diagrams.draw_stack(["a"], line_color="#123456")) == "#123456"
    assert axes[0].get_ylim() != axes[2].get_ylim()  # the post-activation block is taller
    diagrams.share_limits(axes)
    assert len({ax.get_ylim() for ax in axes}) == 1 and len({ax.get_xlim() for ax in axes}) == 1
    with pytest.raises(TypeError, match="`axes`"):
        diagrams.share_limits([])
    plt.close("all")


# ---------------------------------------------------------------- handmade
@pytest.mark.parametrize("post", [False, True])
def test_handmade_block_matches_autograd(post):
    block = handmade.ResidualBlock(7, post_activation=post, seed=1)
    x = torch.randn(5, 7, dtype=F64)
    gaps = handmade.compare_with_autograd(block, x, torch.randn(5, 7, dtype=F64))
    assert set(gaps) == {"output", "input", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    assert max(gaps.values()) < 1e-12


@pytest.mark.parametrize("post", [False, True])
def test_handmade_function_passes_gradcheck(post):
    block = handmade.ResidualBlock(3, seed=2)
    inputs = [torch.randn(2, 3, dtype=F64, requires_grad=True)]
    inputs += [p.clone().requires_grad_(True) for p in block.parameters().values()]
    assert torch.autograd.gradcheck(handmade.HandmadeFunction.apply, (*inputs, post))


def test_handmade_backward_has_identity_term():
    block = handmade.ResidualBlock(4, seed=0)
    for layer in (block.fc1, block.fc2):
        layer.weight.zero_()
        layer.bias.zero_()
    x = torch.randn(3, 4, dtype=F64)
    assert torch.equal(block.forward(x), x)
    g = torch.randn(3, 4, dtype=F64)
    assert torch.equal(block.backward(g), g)


def test_handmade_validation():
    block = handmade.ResidualBlock(4)
    with pytest.raises(ValueError, match="`x`"):
        block.forward(torch.randn(3, 5))
    with pytest.raises(TypeError, match="`x`"):
        block.forward([1.0, 2.0])
    with pytest.raises(RuntimeError, match="forward before backward"):
        handmade.Linear(2, 2).backward(torch.ones(1, 2))
    with pytest.raises(RuntimeError, match="backward first"):
        handmade.ResidualBlock(2).gradients()
    with pytest.raises(ValueError, match="`grad_out`"):
        handmade.compare_with_autograd(block, torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(TypeError, match="`width`"):
        handmade.ResidualBlock(4.0)


# ---------------------------------------------------------------- jacobians
@pytest.mark.parametrize("kind", ["residual", "post", "plain"])
@pytest.mark.parametrize("init", ["default", "kaiming"])
def test_closed_form_jacobians_equal_autograd(kind, init):
    blocks = jacobians.make_blocks(4, width=8, kind=kind, init=init, seed=3)
    x = torch.randn(8, dtype=F64)
    auto = jacobians.block_jacobians(blocks, x)
    closed = jacobians.block_jacobians(blocks, x, "closed_form")
    for a, b in zip(auto, closed, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_block_jacobian_is_identity_plus_branch():
    block = jacobians.make_blocks(1, width=6, seed=0)[0]
    x = torch.randn(6, dtype=F64)
    jac = jacobians.input_jacobian(block, x)
    torch.testing.assert_close(jac, torch.eye(6, dtype=F64) + jacobians.input_jacobian(block.branch, x))


def test_input_jacobian_matches_probes():
    from skipflow.probes import input_jacobian as probes_jacobian

    block = jacobians.make_blocks(1, width=5, seed=0)[0]
    x = torch.randn(5, dtype=F64)
    torch.testing.assert_close(jacobians.input_jacobian(block, x), probes_jacobian(block, x))


def test_cumulative_product_matches_end_to_end():
    blocks = jacobians.make_blocks(5, width=8, seed=1)
    x = torch.randn(8, dtype=F64)
    products = jacobians.cumulative_jacobians(blocks, x)
    assert len(products) == 5
    torch.testing.assert_close(products[-1], jacobians.end_to_end_jacobian(blocks, x), atol=1e-12, rtol=0)
    torch.testing.assert_close(products[1], jacobians.end_to_end_jacobian(blocks[:2], x), atol=1e-12, rtol=0)


def test_counterexamples():
    torch.testing.assert_close(
        jacobians.scaled_identity_product(-0.9, 20), 0.1**20 * torch.eye(4, dtype=F64), rtol=1e-12, atol=0
    )
    assert torch.equal(jacobians.scaled_identity_product(-1.0, 3), torch.zeros(4, 4, dtype=F64))
    u = torch.randn(5, dtype=F64)
    u = u / u.norm()
    jac = jacobians.rank_one_block_jacobian(u)
    torch.testing.assert_close(jac, torch.eye(5, dtype=F64) - torch.outer(u, u))
    assert torch.linalg.svdvals(jac).min() < 1e-12
    with pytest.raises(ValueError, match="unit vector"):
        jacobians.rank_one_block_jacobian(2 * u)


def test_spectra_vs_depth_shape_and_trends():
    s = jacobians.spectra_vs_depth(10, width=16, seeds=(0, 1))
    assert s.shape == (2, 10, 16)
    assert torch.all(s[..., :-1] >= s[..., 1:])  # largest first
    assert torch.all(s[..., -1] < 1)  # the worst direction shrinks even at one block
    plain = jacobians.spectra_vs_depth(10, width=16, kind="plain", seeds=(0,))
    assert plain[0, -1, 0] < s[0, -1, 0] * 1e-3  # plain networks collapse
    torch.testing.assert_close(jacobians.rms(torch.ones(3, 4)), torch.ones(3))


def test_spectra_vs_depth_restores_threads():
    before = torch.get_num_threads()
    jacobians.spectra_vs_depth(2, width=4, seeds=(0,))
    assert torch.get_num_threads() == before


def test_backward_gains_and_mask():
    blocks = jacobians.make_blocks(3, width=8, seed=0)
    x, g = torch.randn(8, dtype=F64), torch.randn(8, dtype=F64)
    gains = jacobians.backward_gains(blocks, x, g)
    total = (g @ jacobians.end_to_end_jacobian(blocks, x)).norm() / g.norm()
    torch.testing.assert_close(gains.prod(), total)
    post = jacobians.make_blocks(3, width=8, kind="post", seed=0)
    share = jacobians.post_activation_mask_fraction(post, x)
    assert share.shape == (3,) and torch.all((share >= 0) & (share <= 1))


def test_jacobians_validation():
    with pytest.raises(TypeError, match="`blocks`"):
        jacobians.block_jacobians(torch.nn.Linear(2, 2), torch.randn(2))
    with pytest.raises(ValueError, match="`x`"):
        jacobians.block_jacobians([torch.nn.Linear(2, 2)], torch.randn(1, 2))
    with pytest.raises(TypeError, match="closed_form"):
        jacobians.block_jacobians([torch.nn.Linear(2, 2)], torch.randn(2), "closed_form")
    with pytest.raises(ValueError, match="`kind`"):
        jacobians.make_blocks(2, kind="pre")
    with pytest.raises(ValueError, match="`init`"):
        jacobians.MLPBlock(4, init="xavier")


# ---------------------------------------------------------------- shortcuts
def test_zero_pad_shortcut_is_option_a():
    x = torch.randn(2, 3, 6, 6)
    out = shortcuts.ZeroPadShortcut(3, 5, stride=2)(x)
    assert out.shape == (2, 5, 3, 3)
    assert torch.equal(out[:, :3], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, 3:]) == 0
    with pytest.raises(ValueError, match="`out_channels`"):
        shortcuts.ZeroPadShortcut(4, 2)


def test_projection_shortcut_shapes():
    assert shortcuts.ProjectionShortcut(3, 5, stride=2)(torch.randn(2, 3, 6, 6)).shape == (2, 5, 3, 3)
    assert shortcuts.ProjectionShortcut(3, 5, kind="linear")(torch.randn(2, 3)).shape == (2, 5)
    with pytest.raises(ValueError, match="`stride`"):
        shortcuts.ProjectionShortcut(3, 5, stride=2, kind="linear")


def test_make_shortcut():
    assert isinstance(shortcuts.make_shortcut(4, 4, 1, "auto"), torch.nn.Identity)
    assert isinstance(shortcuts.make_shortcut(4, 8, 2, "auto"), shortcuts.ProjectionShortcut)
    with pytest.raises(ValueError, match="`shortcut`='identity'"):
        shortcuts.make_shortcut(4, 8, 1, "identity")
    with pytest.raises(ValueError, match="`shortcut`"):
        shortcuts.make_shortcut(4, 4, 1, "gated")


@pytest.mark.parametrize("shortcut", ["projection", "zeropad"])
def test_small_resnet_on_digits(shortcut):
    split = data.load_digits(images=True)
    model = shortcuts.small_resnet(shortcut)
    shapes = dict(shortcuts.trace_shapes(model, split.x_train[:8]))
    assert shapes["input"] == (8, 1, 8, 8)
    assert shapes["2: BasicBlock"] == (8, 16, 4, 4)
    assert shapes["6: Linear"] == (8, 10)
    with pytest.raises(TypeError, match="`model`"):
        shortcuts.trace_shapes(torch.nn.Linear(2, 2), torch.randn(1, 2))
    with pytest.raises(ValueError, match="`channels`"):
        shortcuts.small_resnet(channels=(8,))


@pytest.mark.parametrize("train", [True, False])
def test_inplace_bottleneck_passes_gradcheck(train):
    block = shortcuts.Bottleneck(4, 2, 4).double().train(train)
    x = torch.randn(2, 4, 3, 3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,))


def test_bottleneck_with_stride_and_projection():
    block = shortcuts.Bottleneck(4, 2, 8, stride=2)
    assert block(torch.randn(2, 4, 4, 4)).shape == (2, 8, 2, 2)


# ---------------------------------------------------------------- pitfalls
def test_add_into_relu_raises():
    block = pitfalls.AddIntoReluBlock(3)
    with pytest.raises(RuntimeError, match="inplace operation"):
        block(torch.randn(2, 3, requires_grad=True)).sum().backward()


def test_inplace_preact_raises_after_tanh_and_corrupts_after_linear():
    block = pitfalls.InplacePreActBlock(3)
    with pytest.raises(RuntimeError, match="inplace operation"):
        block(torch.tanh(torch.randn(2, 3, requires_grad=True))).sum().backward()
    stem = torch.nn.Linear(3, 3)
    good = pitfalls.InplacePreActBlock(3, inplace=False)
    good.load_state_dict(block.state_dict())
    x = torch.randn(50, 3)
    expected = good(stem(x))
    got = block(stem(x))
    got.sum().backward()  # no error
    assert torch.equal((got - expected).abs() > 1e-12, stem(x) < 0)


# ---------------------------------------------------------------- branch scale, and the (1 + c)^{L/2} law
@pytest.mark.parametrize("kind", ["residual", "post"])
def test_branch_scale_closed_form_matches_autograd(kind):
    blocks = jacobians.make_blocks(3, width=8, kind=kind, init="kaiming", seed=2, branch_scale=0.3)
    x = torch.randn(8, dtype=F64)
    for auto, closed in zip(
        jacobians.block_jacobians(blocks, x), jacobians.block_jacobians(blocks, x, "closed_form"), strict=True
    ):
        torch.testing.assert_close(auto, closed, atol=1e-12, rtol=0)
    x2 = torch.randn(4, 8, dtype=F64)
    block = blocks[0]
    with torch.no_grad():
        expected = x2 + 0.3 * block.branch(x2)
        if kind == "post":
            expected = torch.relu(expected)
        torch.testing.assert_close(block(x2), expected)


def test_branch_scale_zero_is_the_identity_and_plain_refuses_it():
    block = jacobians.make_blocks(1, width=5, seed=0, branch_scale=0.0)[0]
    x = torch.randn(3, 5, dtype=F64)
    assert torch.equal(block(x), x)
    with pytest.raises(ValueError, match="branch_scale"):
        jacobians.make_blocks(2, kind="plain", branch_scale=0.5)
    with pytest.raises(TypeError, match="branch_scale"):
        jacobians.MLPBlock(4, branch_scale="1")


def test_predicted_rms_gain():
    torch.testing.assert_close(jacobians.predicted_rms_gain(2), torch.tensor(19 / 18, dtype=F64))
    torch.testing.assert_close(jacobians.predicted_rms_gain(50, "kaiming"), torch.tensor(3.0**25, dtype=F64))
    torch.testing.assert_close(
        jacobians.predicted_rms_gain(50, "kaiming", 50**-0.5), torch.tensor(1.04**25, dtype=F64)
    )
    assert jacobians.predicted_rms_gain(torch.arange(1, 4)).shape == (3,)
    with pytest.raises(ValueError, match="`init`"):
        jacobians.predicted_rms_gain(3, "xavier")


def test_the_prediction_matches_wide_random_networks():
    # Width 128, 20 blocks, 4 seeds: the measured mean squared gain is within 25% of (1 + c)^L.
    for init in ("default", "kaiming"):
        s = jacobians.spectra_vs_depth(20, width=128, init=init, seeds=(0, 1, 2, 3))
        measured = jacobians.rms(s[:, -1]).pow(2).log().mean()
        predicted = jacobians.predicted_rms_gain(20, init).pow(2).log()
        assert abs(measured / predicted - 1) < 0.25, (init, measured, predicted)
