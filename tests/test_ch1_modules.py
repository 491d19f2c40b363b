"""Unit tests of chapter 1's modules: skipflow.chain, skipflow.blog, skipflow.degradation and the
gradient-flow explorer."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch
from skipflow import blog, chain, degradation, models
from skipflow.widgets import (
    GRADIENT_FLOW_DEFAULTS,
    gradient_flow_explorer,
    measure_gradient_flow,
    plot_gradient_flow,
)
from torch import nn
from torch.nn import functional as F

matplotlib.use("Agg")


# ------------------------------------------------------------------ chain
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_chain_rule_gradient_matches_autograd(activation):
    torch.manual_seed(0)
    net = models.plain_mlp(7, 3, depth=5, width=9, activation=activation).double()
    x = torch.randn(7, dtype=torch.float64)
    result = chain.chain_rule_gradient(
        chain.chain_modules(net), x, lambda o: F.cross_entropy(o.unsqueeze(0), torch.tensor([2]))
    )
    assert result.by_product.shape == net.stem[0].weight.shape
    assert result.max_abs_difference < 1e-12
    assert result.by_autograd.abs().max() > 0


def test_layer_jacobians_shapes_and_product():
    torch.manual_seed(0)
    net = models.plain_mlp(4, 2, depth=4, width=6, activation="tanh").double()
    x = torch.randn(4, dtype=torch.float64)
    states, jacs = chain.layer_jacobians(chain.chain_modules(net), x)
    assert [tuple(j.shape) for j in jacs] == [(6, 4), (6, 6), (6, 6), (2, 6)]
    assert len(states) == len(jacs) + 1
    full = torch.autograd.functional.jacobian(lambda v: net(v.unsqueeze(0)).squeeze(0), x)
    assert torch.allclose(chain.jacobian_product(jacs), full, atol=1e-12)


def test_residual_block_jacobian_is_identity_plus_branch():
    torch.manual_seed(0)
    net = models.residual_mlp(4, 2, depth=4, width=5, norm=None).double()
    h = torch.randn(5, dtype=torch.float64)
    _, (jac,) = chain.layer_jacobians([net.blocks[0]], h)
    _, (branch,) = chain.layer_jacobians([net.blocks[0].branch], h)
    assert torch.allclose(jac, torch.eye(5, dtype=torch.float64) + branch)


def test_chain_validates_arguments():
    with pytest.raises(TypeError, match=r"skipflow\.models\.Net"):
        chain.chain_modules(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="`x` must be a 1-D tensor"):
        chain.layer_jacobians([nn.Linear(2, 2)], torch.zeros(3, 2))
    with pytest.raises(TypeError, match="`modules`"):
        chain.layer_jacobians([], torch.zeros(2))
    with pytest.raises(TypeError, match="`loss_fn`"):
        chain.chain_rule_gradient([nn.Linear(2, 2)], torch.zeros(2), loss_fn=3)
    with pytest.raises(ValueError, match="no weight matrix"):
        chain.chain_rule_gradient([nn.Tanh()], torch.zeros(2), loss_fn=lambda o: o.sum())
    with pytest.raises(TypeError, match="`jacobians`"):
        chain.jacobian_product([])


# ------------------------------------------------------------------ blog
def test_blog_weights_follow_pytorch_default_init():
    ws = blog.blog_weights(n_seeds=50, width=10, n_layers=5)
    assert [tuple(w.shape) for w in ws] == [(50, 10, 10)] * 4 + [(50, 1, 10)]
    assert all(w.abs().max() <= 1 / math.sqrt(10) for w in ws)
    # U(-b, b) has std b/sqrt(3); 4000 draws pin it to a few percent
    assert torch.cat([w.flatten() for w in ws[:-1]]).std().item() == pytest.approx(
        1 / math.sqrt(30), rel=0.05
    )


def test_blog_forward_matches_an_nn_module_for_one_seed():
    ws = blog.blog_weights(n_seeds=3)
    x = torch.randn(3, 8, 10)
    for residual in (False, True):
        out, _ = blog.blog_forward(ws, x, residual)
        seed = 1
        h = x[seed]
        for k in range(4):
            layer = nn.Linear(10, 10, bias=False)
            layer.weight.data = ws[k][seed]
            h = torch.relu(layer(h)) + h if residual else torch.relu(layer(h))
        head = nn.Linear(10, 1, bias=False)
        head.weight.data = ws[4][seed]
        assert torch.allclose(out[seed], head(h), atol=1e-6)


def test_blog_experiment_gradients_are_per_seed():
    full = blog.blog_experiment(n_seeds=6)
    assert full.ratio.shape == (6, 5)
    # seed s's gradient does not depend on the other seeds in the batch (the seeds are independent)
    ws = blog.blog_weights(n_seeds=6)
    gen = torch.Generator().manual_seed(10_000)
    x = torch.randn(6, 64, 10, generator=gen)
    y = torch.randn(6, 64, 1, generator=gen)
    w = [t[2:3].clone().requires_grad_(True) for t in ws]
    out, _ = blog.blog_forward(w, x[2:3], True)
    ((out - y[2:3]) ** 2).mean().backward()
    assert w[0].grad.abs().mean().item() == pytest.approx(full.residual_grad[2, 0].item(), rel=1e-5)
    assert w[4].grad.norm().item() == pytest.approx(full.residual_last_grad[2].item(), rel=1e-5)


def test_blog_last_layer_ratio_factors_into_input_error_and_alignment():
    result = blog.blog_experiment(n_seeds=8)
    for alignment in (result.plain_alignment, result.residual_alignment):
        assert torch.all((alignment > 0) & (alignment <= 1 + 1e-6))  # Cauchy-Schwarz
    product = result.last_input_ratio * result.out_grad_ratio * result.alignment_ratio
    assert torch.allclose(product, result.last_grad_ratio, rtol=1e-5)


def test_blog_validates_arguments():
    with pytest.raises(ValueError, match="`n_seeds`"):
        blog.blog_experiment(n_seeds=0)
    with pytest.raises(TypeError, match="`residual`"):
        blog.blog_forward(blog.blog_weights(1), torch.zeros(1, 2, 10), residual=1)
    with pytest.raises(ValueError, match="`x` must have shape"):
        blog.blog_forward(blog.blog_weights(1), torch.zeros(2, 10), residual=True)


# ------------------------------------------------------------------ degradation
def test_degradation_models_have_the_requested_depth():
    for kind in degradation.KINDS:
        net = degradation.degradation_model(kind, 20)
        assert sum(isinstance(m, nn.Linear) for m in net.modules()) == 20
    with pytest.raises(ValueError, match="`kind`"):
        degradation.degradation_model("dense", 20)


def test_degradation_study_runs_and_validates(digits):
    small = digits.subset(256)
    runs = degradation.degradation_study(small, depths=(4,), n_seeds=1, steps=3, batch_size=32)
    assert set(runs) == {("plain", 4), ("residual", 4)}
    assert all(len(h.loss) == 3 and 0 <= h.train_acc[-1] <= 1 for hs in runs.values() for h in hs)
    with pytest.raises(ValueError, match="`depths` must be even"):
        degradation.degradation_study(small, depths=(5,))
    with pytest.raises(ValueError, match="`depths`"):
        degradation.degradation_study(small, depths=())
    with pytest.raises(TypeError, match="`data`"):
        degradation.degradation_study("digits")


# ------------------------------------------------------------------ explorer
def test_measure_gradient_flow_shapes_and_determinism():
    a = measure_gradient_flow(6, "relu", "kaiming", n_seeds=2)
    b = measure_gradient_flow(6, "relu", "kaiming", n_seeds=2)
    assert a.shape == (2, 6) and a.dtype == torch.float64
    assert torch.equal(a, b)


def test_measure_gradient_flow_shows_vanishing_and_the_residual_fix():
    plain = measure_gradient_flow(20, "sigmoid", "default", n_seeds=1)
    residual = measure_gradient_flow(20, "sigmoid", "default", residual=True, n_seeds=1)
    assert (plain[0, 0] / plain[0, -1]) < 1e-6
    assert (residual[0, 0] / residual[0, -1]) > 1e-2


def test_measure_gradient_flow_validates_arguments():
    with pytest.raises(ValueError, match="even depth"):
        measure_gradient_flow(7, residual=True)
    with pytest.raises(ValueError, match="`activation`"):
        measure_gradient_flow(6, "softplus")
    with pytest.raises(ValueError, match="`norm`"):
        measure_gradient_flow(6, norm="group")
    with pytest.raises(TypeError, match="`residual`"):
        measure_gradient_flow(6, residual="yes")


def test_plot_and_explorer_at_defaults():
    import matplotlib.pyplot as plt

    ax = plot_gradient_flow(**GRADIENT_FLOW_DEFAULTS, n_seeds=1)
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert len(ax.get_legend().get_texts()) == 2  # plain and residual
    plt.close("all")
    ui = gradient_flow_explorer(depth=6)
    assert ui.children  # controls and the output area
    plt.close("all")
    with pytest.raises(ValueError, match="unknown setting"):
        gradient_flow_explorer(width=3)
