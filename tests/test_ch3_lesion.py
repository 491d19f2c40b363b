"""Unit tests of skipflow.lesion: deleting and reordering blocks returns new models."""

from __future__ import annotations

import pytest
import torch
from skipflow import lesion, models


def _net(n_blocks: int = 5):
    torch.manual_seed(0)
    return models.residual_mlp(4, 3, depth=2 + 2 * n_blocks, width=6, norm=None).eval()


def _manual(net, order, x):
    h = net.stem(x)
    for i in order:
        h = net.blocks[i](h)
    return net.head(net.final(h))


def test_delete_blocks_returns_a_new_model():
    net = _net()
    x = torch.randn(3, 4)
    before = net(x).detach().clone()
    new = lesion.delete_blocks(net, [1, -1])
    assert len(new.blocks) == 3 and len(net.blocks) == 5
    assert torch.allclose(net(x), before)
    assert torch.allclose(new(x), _manual(net, [0, 2, 3], x), atol=1e-6)
    assert new.blocks[0] is not net.blocks[0]  # a deep copy: training `new` cannot change `net`
    assert len(lesion.delete_blocks(net, 2).blocks) == 4


def test_reorder_and_swap():
    net = _net()
    x = torch.randn(3, 4)
    order = [4, 3, 2, 1, 0]
    assert torch.allclose(lesion.reorder_blocks(net, order)(x), _manual(net, order, x), atol=1e-6)
    assert torch.allclose(lesion.swap_blocks(net, 0, 2)(x), _manual(net, [2, 1, 0, 3, 4], x), atol=1e-6)
    with pytest.raises(ValueError, match="order"):
        lesion.reorder_blocks(net, [0, 0, 1, 2, 3])
    with pytest.raises(ValueError, match="j"):
        lesion.swap_blocks(net, 0, 7)
    with pytest.raises(TypeError, match="net"):
        lesion.delete_blocks(torch.nn.Linear(2, 2), 0)
    with pytest.raises(ValueError, match="indices"):
        lesion.delete_blocks(net, 5)


def test_kendall_tau_and_random_swaps():
    assert lesion.kendall_tau([0, 1, 2, 3]) == 1.0
    assert lesion.kendall_tau([3, 2, 1, 0]) == -1.0
    gen = torch.Generator().manual_seed(0)
    order = lesion.random_swaps(6, 3, gen)
    assert sorted(order) == list(range(6))
    assert lesion.random_swaps(6, 0, gen) == list(range(6))


def test_lesion_experiments_shapes_and_determinism():
    net = _net()
    x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
    loss, acc = lesion.single_deletion(net, x, y)
    assert loss.shape == acc.shape == (5,)
    multi = lesion.random_deletion_accuracy(net, x, y, ks=[1, 2], samples=3, seed=1)
    assert multi.shape == (2, 3)
    assert torch.equal(multi, lesion.random_deletion_accuracy(net, x, y, ks=[1, 2], samples=3, seed=1))
    acc_r, tau = lesion.random_reorder_accuracy(net, x, y, swaps=[0, 2], samples=2)
    assert acc_r.shape == tau.shape == (2, 2)
    assert bool((tau[0] == 1).all())  # no swap: the original order
    with pytest.raises(ValueError, match="ks"):
        lesion.random_deletion_accuracy(net, x, y, ks=[5])
    ratios = lesion.branch_ratios(net, x)
    assert ratios.shape == (5,) and bool((ratios >= 0).all())


def test_share_weights_gives_the_same_numbers_without_copying():
    # The fast path evaluates views that share the trained modules; it must equal the deep-copy path exactly.
    torch.manual_seed(1)
    net = models.residual_mlp(4, 3, depth=2 + 2 * 6, width=6, norm="batch")
    x, y = torch.randn(30, 4), torch.randint(0, 3, (30,))
    net.train()
    net(torch.randn(16, 4))  # non-trivial running statistics
    before = {k: v.clone() for k, v in net.state_dict().items()}
    n_modules = len(list(net.modules()))
    for slow, fast in [
        (lesion.single_deletion(net, x, y), lesion.single_deletion(net, x, y, share_weights=True)),
        (
            lesion.random_reorder_accuracy(net, x, y, swaps=[1, 4], samples=3, seed=2),
            lesion.random_reorder_accuracy(net, x, y, swaps=[1, 4], samples=3, seed=2, share_weights=True),
        ),
    ]:
        assert all(torch.equal(a, b) for a, b in zip(slow, fast, strict=True))
    assert torch.equal(
        lesion.random_deletion_accuracy(net, x, y, ks=[1, 3], samples=4, seed=3),
        lesion.random_deletion_accuracy(net, x, y, ks=[1, 3], samples=4, seed=3, share_weights=True),
    )
    assert net.training and len(net.blocks) == 6 and len(list(net.modules())) == n_modules
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
