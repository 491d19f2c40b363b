"""Unit tests of skipflow.orderings: the five block orderings and the shortcut variants of chapter 4."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from skipflow import orderings, probes
from skipflow.models import Net
from torch import nn


@pytest.mark.parametrize("ordering", orderings.ORDERINGS)
@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_every_ordering_builds_a_net_with_the_right_output(ordering, kind):
    in_features = 64 if kind == "linear" else 1
    net = orderings.ordered_net(in_features, 10, 3, 8, ordering, kind=kind)
    x = torch.randn(4, 64) if kind == "linear" else torch.randn(4, 1, 8, 8)
    assert isinstance(net, Net) and net.n_blocks == 3
    assert net(x).shape == (4, 10)


@pytest.mark.parametrize("ordering", orderings.ORDERINGS)
def test_block_layout_follows_the_recipe(ordering):
    block = orderings.OrderedBlock(8, ordering)
    branch, after = orderings.ORDERING_RECIPES[ordering]
    expected = {"weight": nn.Linear, "BN": nn.BatchNorm1d, "ReLU": nn.ReLU}
    assert [type(m) for m in block.branch] == [expected[s] for s in branch]
    assert [type(m) for m in block.after] == [expected[s] for s in after]


@pytest.mark.parametrize("ordering", orderings.ORDERINGS)
def test_clean_orderings_are_exactly_identity_plus_branch(ordering):
    block = orderings.OrderedBlock(6, ordering).eval()
    x = torch.randn(6)
    defect = probes.input_jacobian(block, x) - probes.input_jacobian(block.branch, x) - torch.eye(6)
    if orderings.has_clean_identity_path(ordering):
        assert defect.norm() < 1e-5
    else:
        assert defect.norm() > 1e-3


def test_bn_after_addition_differs_from_the_original_in_training_mode():
    # What follows the addition: ReLU in (a), BN → ReLU in (b). In eval mode at init the BN is the identity,
    # so both pass gradients back alike; in training mode the batch statistics make them differ.
    x, u = torch.randn(64, 8), torch.randn(64, 8)
    grads = {}
    for ordering in ("original", "bn_after_add"):
        torch.manual_seed(0)
        block = orderings.OrderedBlock(8, ordering)
        for mode in ("eval", "train"):
            h = x.clone().requires_grad_(True)
            getattr(block, mode)()
            (grads[ordering, mode],) = torch.autograd.grad(block.after(h), h, u)
    assert torch.allclose(grads["original", "eval"], grads["bn_after_add", "eval"])
    assert not torch.allclose(grads["original", "train"], grads["bn_after_add", "train"], atol=1e-3)


def test_clean_identity_path_set():
    clean = {o for o in orderings.ORDERINGS if orderings.has_clean_identity_path(o)}
    assert clean == {"relu_before_add", "relu_only_preact", "full_preact"}


def test_full_preact_has_final_bn_relu_and_bare_stem():
    net = orderings.ordered_net(64, 10, 2, 8, "full_preact")
    assert isinstance(net.stem, nn.Linear)
    assert [type(m) for m in net.final] == [nn.BatchNorm1d, nn.ReLU]
    post = orderings.ordered_net(64, 10, 2, 8, "original")
    assert isinstance(post.final, nn.Identity)
    control = orderings.ordered_net(64, 10, 2, 8, "original", final_norm=True)
    assert [type(m) for m in control.final] == [nn.BatchNorm1d, nn.ReLU]
    bare = orderings.ordered_net(64, 10, 2, 8, "full_preact", final_norm=False)
    assert [type(m) for m in bare.final] == [nn.ReLU]


@pytest.mark.parametrize("lam, depth", [(0.5, 7), (0.9, 20), (1.0, 5)])
def test_scaling_multiplies_the_shortcut_path_by_lambda_to_the_L(lam, depth):
    net = orderings.ordered_net(
        64, 10, depth, 8, "full_preact", shortcut="scaling", shortcut_scale=lam, branch_scale=0.0
    )
    h0 = torch.randn(3, 8, requires_grad=True)
    h = h0
    for block in net.blocks:
        h = block(h)
    h.sum().backward()
    assert torch.allclose(h0.grad, torch.full_like(h0, lam**depth), rtol=1e-5)


def test_gates_start_near_the_identity_with_negative_bias():
    for shortcut in ("exclusive_gate", "shortcut_gate"):
        block = orderings.OrderedBlock(8, "full_preact", shortcut, gate_bias=-6.0).eval()
        with torch.no_grad():
            block.branch[-1].weight.zero_()
            block.branch[-1].bias.zero_()
        x = torch.randn(5, 8)
        assert torch.allclose(block(x), x, atol=0.02 * x.abs().max().item())


def test_exclusive_gate_formula():
    block = orderings.OrderedBlock(4, "full_preact", "exclusive_gate", gate_bias=0.0).eval()
    x = torch.randn(3, 4)
    with torch.no_grad():
        g = torch.sigmoid(block.gate.layer(x))
        expected = (1 - g) * x + g * block.branch(x)
        assert torch.allclose(block(x), expected, atol=1e-6)


def test_projection_shortcut_is_learned_linear():
    block = orderings.OrderedBlock(4, "full_preact", "projection")
    assert isinstance(block.shortcut, nn.Linear)
    conv = orderings.OrderedBlock(4, "full_preact", "projection", kind="conv")
    assert isinstance(conv.shortcut, nn.Conv2d) and conv.shortcut.kernel_size == (1, 1)


def test_shortcut_dropout_masks_without_rescaling_and_scales_in_eval():
    drop = orderings.ShortcutDropout(0.5)
    x = torch.ones(1000)
    out = drop.train()(x)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert 0.4 < out.mean().item() < 0.6
    assert torch.allclose(drop.eval()(x), torch.full_like(x, 0.5))


def test_block_options_reach_every_block_and_gate_bias_survives_reinit():
    net = orderings.ordered_net(64, 10, 3, 8, shortcut="exclusive_gate", gate_bias=-4.0, init="kaiming")
    for block in net.blocks:
        assert torch.allclose(block.gate.layer.bias, torch.full((8,), -4.0))


@pytest.mark.parametrize(
    "kwargs, err, word",
    [
        (dict(ordering="pre"), ValueError, "ordering"),
        (dict(shortcut="gate"), ValueError, "shortcut"),
        (dict(n_blocks=0), ValueError, "n_blocks"),
        (dict(width=2.5), TypeError, "width"),
        (dict(final_norm="yes"), TypeError, "final_norm"),
        (dict(lam=0.5), TypeError, "block option"),
        (dict(kind="rnn"), ValueError, "kind"),
    ],
)
def test_ordered_net_validates_arguments(kwargs, err, word):
    args = dict(in_features=64, out_features=10, n_blocks=2)
    args.update(kwargs)
    with pytest.raises(err, match=word):
        orderings.ordered_net(**args)


def test_block_validates_drop_p():
    with pytest.raises(ValueError, match="drop_p"):
        orderings.OrderedBlock(4, shortcut="dropout", drop_p=1.5)


def test_input_grad_norm_matches_autograd():
    net = orderings.ordered_net(64, 10, 2, 8).eval()
    x, y = torch.randn(5, 64), torch.randint(0, 10, (5,))
    xr = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(net(xr), y).backward()
    assert orderings.input_grad_norm(net, x, y) == pytest.approx(xr.grad.norm().item(), rel=1e-5)
    with pytest.raises(TypeError, match="model"):
        orderings.input_grad_norm("net", x, y)


def test_post_activation_forward_matches_original_block_layout():
    parts = orderings.BlockParts(6).eval()
    x = torch.randn(3, 6)
    expected = torch.relu(x + parts.bn2(parts.lin2(torch.relu(parts.bn1(parts.lin1(x))))))
    assert torch.allclose(orderings.post_activation_forward(x, parts), expected)


def test_train_seeds_is_reproducible_and_attaches_hook_to_first_seed(digits):
    calls = []

    def build():
        return orderings.ordered_net(64, 10, 2, 8)

    runs = orderings.train_seeds(
        build, digits, (0, 1), on_step=lambda s, m: calls.append(s), steps=3, progress=False
    )
    again = orderings.train_seeds(build, digits, (0,), steps=3, progress=False)
    assert len(runs) == 2 and runs[0].loss == again[0].loss
    assert calls == [0, 1, 2]
    with pytest.raises(ValueError, match="seeds"):
        orderings.train_seeds(build, digits, ())
    with pytest.raises(TypeError, match="build"):
        orderings.train_seeds(None, digits)


def test_draw_orderings_draws_every_label():
    ax = orderings.draw_orderings()
    texts = {t.get_text() for t in ax.texts}
    assert "ReLU" in texts and "BN" in texts and "weight" in texts
    assert ax.get_title()
    plt.close("all")
    with pytest.raises(ValueError, match="orderings"):
        orderings.draw_orderings(["preact"])


@pytest.mark.parametrize("ordering", orderings.ORDERINGS)
def test_norm_none_means_no_normalization_anywhere(ordering):
    net = orderings.ordered_net(64, 10, 3, 8, ordering, norm=None)
    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
    assert not [m for m in net.modules() if isinstance(m, norms)]
    # and so its output no longer depends on the rest of the batch, even in training mode
    x = torch.randn(6, 64)
    assert torch.allclose(net.train()(x)[:2], net(x[:2]), atol=1e-6)


def test_norm_none_keeps_the_final_relu_of_pre_activation_and_rejects_final_norm():
    assert [type(m) for m in orderings.ordered_net(64, 10, 2, 8, "full_preact", norm=None).final] == [nn.ReLU]
    with pytest.raises(ValueError, match="final_norm"):
        orderings.ordered_net(64, 10, 2, 8, "original", norm=None, final_norm=True)
    layer = orderings.ordered_net(64, 10, 2, 8, "full_preact", norm="layer")
    assert [type(m) for m in layer.final] == [nn.LayerNorm, nn.ReLU]


def test_scaled_shortcut_without_normalization_tracks_lambda_to_the_L():
    # With the branches off and no normalization anywhere, only the λ-scaled shortcut carries the gradient.
    x, y = torch.randn(16, 64), torch.randint(0, 10, (16,))
    grads = []
    for n in (1, 11):
        torch.manual_seed(0)
        net = orderings.ordered_net(
            64, 10, n, 8, norm=None, shortcut="scaling", shortcut_scale=0.5, branch_scale=0.0
        )
        grads.append(orderings.input_grad_norm(net, x, y))
    assert grads[1] / grads[0] == pytest.approx(0.5**10, rel=0.3)


def test_stream_and_branch_rms_matches_the_forward_pass():
    torch.manual_seed(0)
    net = orderings.ordered_net(64, 10, 4, 8, "full_preact").train()
    x = torch.randn(32, 64)
    stream, branch = orderings.stream_and_branch_rms(net, x)
    assert stream.shape == (5,) and branch.shape == (4,)
    with torch.no_grad():
        h = [net.stem(x)]
        for block in net.blocks:
            h.append(block(h[-1]))
        f1 = net.blocks[0].branch(h[0])
    assert torch.allclose(stream, torch.stack([v.pow(2).mean().sqrt() for v in h]), rtol=1e-5)
    assert branch[0] == pytest.approx(float(f1.pow(2).mean().sqrt()), rel=1e-5)
    with pytest.raises(TypeError, match="model"):
        orderings.stream_and_branch_rms(nn.Linear(2, 2), x)
