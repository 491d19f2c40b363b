"""Unit tests of skipflow.probes and skipflow.train against finite differences and closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from skipflow import data, models, probes, train
from torch import nn
from torch.nn import functional as F


def small_net(order: str = "pre") -> nn.Module:
    torch.manual_seed(0)
    return models.residual_mlp(5, 3, 6, width=4, norm=None, order=order).double()


def finite_difference_grad(model: nn.Module, param: torch.Tensor, x, y, eps: float = 1e-6) -> torch.Tensor:
    grad = torch.zeros_like(param)
    flat = param.data.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + eps
        up = F.cross_entropy(model(x), y).item()
        flat[i] = old - eps
        down = F.cross_entropy(model(x), y).item()
        flat[i] = old
        grad.view(-1)[i] = (up - down) / (2 * eps)
    return grad


def test_layer_grad_norms_match_finite_differences():
    net = small_net()
    x = torch.randn(7, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (7,))
    norms = probes.layer_grad_norms(net, x, y)
    layers = probes.weight_layers(net)
    assert len(norms) == len(layers) == 6
    for norm, (_, layer) in zip(norms, layers, strict=True):
        fd = finite_difference_grad(net, layer.weight, x, y)
        assert float(norm) == pytest.approx(float(fd.norm()), rel=1e-6)


def test_grad_to_weight_ratios_divide_by_weight_norms():
    net = small_net()
    x = torch.randn(7, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (7,))
    norms = probes.layer_grad_norms(net, x, y)
    ratios = probes.grad_to_weight_ratios(net)  # uses the stored .grad
    weights = torch.stack([m.weight.norm() for _, m in probes.weight_layers(net)])
    assert torch.allclose(ratios, norms / weights)
    with pytest.raises(ValueError, match="both `x` and `y`"):
        probes.grad_to_weight_ratios(net, x)
    with pytest.raises(ValueError, match="no gradient yet"):
        probes.grad_to_weight_ratios(small_net())


def test_stream_grad_norms_match_a_manual_backward():
    net = small_net(order="post")
    x = torch.randn(4, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (4,))
    got = probes.stream_grad_norms(net, x, y)
    hs = [net.stem(x)]
    for block in net.blocks:
        hs.append(block(hs[-1]))
    loss = F.cross_entropy(net.head(net.final(hs[-1])), y)
    grads = torch.autograd.grad(loss, hs)
    assert torch.allclose(got, torch.stack([g.norm() for g in grads]))
    with pytest.raises(TypeError, match=r"skipflow\.models\.Net"):
        probes.stream_grad_norms(nn.Linear(5, 3), x, y)


def test_activation_stats_match_a_manual_forward():
    net = small_net()
    x = torch.randn(9, 5, dtype=torch.float64)
    stats = probes.activation_stats(net, x)
    with torch.no_grad():  # the reference forward needs no graph, like the probe
        h = net.stem(x)
        assert float(stats["std"][0]) == pytest.approx(float(h.std()))
        for block in net.blocks:
            h = block(h)
        assert float(stats["rms"][-1]) == pytest.approx(float(h.pow(2).mean().sqrt()))
    assert len(stats["mean"]) == net.n_blocks + 1


def test_jacobian_of_a_linear_map_is_its_matrix():
    a = torch.randn(3, 4, dtype=torch.float64)
    lin = nn.Linear(4, 3, bias=True).double()
    with torch.no_grad():
        lin.weight.copy_(a)
    x = torch.randn(4, dtype=torch.float64)
    assert torch.allclose(probes.input_jacobian(lin, x), a)
    assert torch.allclose(probes.jacobian_singular_values(lin, x), torch.linalg.svdvals(a))
    with pytest.raises(ValueError, match="1-D"):
        probes.input_jacobian(lin, x.unsqueeze(0))
    with pytest.raises(TypeError, match="`fn`"):
        probes.input_jacobian("lin", x)


def test_identity_residual_jacobian_is_identity_plus_branch():
    torch.manual_seed(1)
    net = models.residual_mlp(4, 4, 4, width=4, norm=None).double()
    block = net.blocks[0]
    x = torch.randn(4, dtype=torch.float64)
    jb = probes.input_jacobian(block, x)
    jf = probes.input_jacobian(block.branch, x)
    assert torch.allclose(jb, torch.eye(4, dtype=torch.float64) + jf)


def test_mean_layer_grad_norms_is_a_geometric_mean():
    x = torch.randn(8, 5)
    y = torch.randint(0, 3, (8,))
    geo, rows = probes.mean_layer_grad_norms(lambda: models.plain_mlp(5, 3, 4, width=6), x, y, n_seeds=3)
    assert rows.shape == (3, 4)
    assert torch.allclose(geo, rows.log().mean(0).exp())


def test_train_reduces_the_loss_and_is_deterministic():
    split = data.load_digits()

    def run():
        torch.manual_seed(0)
        net = models.residual_mlp(64, 10, 6, width=32)
        return train.train(net, split, steps=60, lr=0.05, eval_every=30, progress=False)

    a, b = run(), run()
    assert a.loss == b.loss  # same seeds, same numbers
    assert a.final_loss < 0.5 * a.loss[0]
    assert a.eval_step == [30, 60] and len(a.test_acc) == 2
    assert a.test_acc[-1] > 0.8  # a 6-layer net learns digits in 60 steps well above chance (0.1)
    assert a.steps_to(a.loss[0]) == 0 and a.steps_to(-1.0) is None


def test_train_detects_divergence():
    split = data.make_regression(n_train=128, n_test=32)
    torch.manual_seed(0)
    net = models.plain_mlp(10, 1, 4, width=16)
    hist = train.train(net, split, steps=50, lr=1e6, momentum=0.0, progress=False)
    assert hist.diverged and not math.isfinite(hist.loss[-1]) and len(hist.loss) < 50


def test_evaluate_counts_accuracy():
    x = torch.eye(4)
    y = torch.tensor([0, 1, 2, 0])
    model = nn.Identity()
    loss, acc = train.evaluate(model, x, y)
    assert acc == pytest.approx(0.75)
    assert loss == pytest.approx(float(F.cross_entropy(x, y)))


def test_on_step_sees_gradients():
    split = data.load_digits()
    seen = []
    net = models.plain_mlp(64, 10, 3, width=8)
    train.train(
        net, split, steps=3, progress=False, on_step=lambda s, m: seen.append(m.head.weight.grad is not None)
    )
    assert seen == [True, True, True]


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"steps": 0}, ValueError, "`steps`"),
        ({"lr": 0}, ValueError, "`lr`"),
        ({"optimizer": "lbfgs"}, ValueError, "`optimizer`"),
        ({"momentum": 1.5}, ValueError, "`momentum`"),
        ({"eval_every": 0}, ValueError, "`eval_every`"),
        ({"grad_clip": -1.0}, ValueError, "`grad_clip`"),
    ],
)
def test_train_rejects_bad_arguments(kwargs, err, match):
    split = data.load_digits()
    with pytest.raises(err, match=match):
        train.train(models.plain_mlp(64, 10, 3), split, progress=False, **kwargs)


def test_train_rejects_wrong_types():
    with pytest.raises(TypeError, match="`data`"):
        train.train(models.plain_mlp(64, 10, 3), (torch.zeros(1), torch.zeros(1)), progress=False)
    with pytest.raises(TypeError, match="`model`"):
        train.train("model", data.load_digits(), progress=False)
