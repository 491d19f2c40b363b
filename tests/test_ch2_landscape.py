"""Unit tests of skipflow.landscape: the functional MLPs, filter normalization, slices and curvature."""

from __future__ import annotations

import pytest
import torch
from skipflow import landscape as ls

F64 = torch.float64


def _data(n=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=gen, dtype=F64), torch.randint(0, 3, (n,), generator=gen)


def test_params_and_forward_shapes_batched_and_not():
    x, _ = _data()
    params = ls.init_params("residual", 2, width=5, in_features=6, n_classes=3, seed=0)
    assert len(params) == 4 * (1 + 2 * 2) + 2 and all(p.dtype == F64 for p in params)
    logits = ls.forward(params, x, "residual")
    assert logits.shape == (40, 3)
    batched = [torch.stack([p, p]) for p in params]
    out = ls.forward(batched, x, "residual")
    assert out.shape == (2, 40, 3)
    torch.testing.assert_close(out[0], logits)
    torch.testing.assert_close(out[1], logits)


def test_plain_and_residual_share_parameters_but_not_functions():
    x, _ = _data()
    plain = ls.init_params("plain", 2, width=5, in_features=6, n_classes=3, seed=1)
    res = ls.init_params("residual", 2, width=5, in_features=6, n_classes=3, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(plain, res, strict=True))
    assert not torch.allclose(ls.forward(plain, x, "plain"), ls.forward(res, x, "residual"))
    zero = ls.init_params("plain", 0, width=5, in_features=6, n_classes=3, seed=1)
    torch.testing.assert_close(ls.forward(zero, x, "plain"), ls.forward(zero, x, "residual"))


def test_residual_block_is_post_activation():
    x, _ = _data()
    params = ls.init_params("residual", 1, width=5, in_features=6, n_classes=3, seed=2)
    h = torch.relu(ls._layer(x.unsqueeze(0), *[p.unsqueeze(0) for p in params[0:4]]))
    first = [p.unsqueeze(0) for p in params[4:8]]
    second = [p.unsqueeze(0) for p in params[8:12]]
    z = ls._layer(torch.relu(ls._layer(h, *first)), *second)
    h = torch.relu(h + z)
    expected = h @ params[-2].T + params[-1]
    torch.testing.assert_close(ls.forward(params, x, "residual"), expected.squeeze(0))


def test_filter_normalized_direction():
    params = ls.init_params("plain", 1, width=5, in_features=6, n_classes=3, seed=0)
    d = ls.filter_normalized_direction(params, seed=3)
    for p, q in zip(params, d, strict=True):
        assert p.shape == q.shape
        if p.dim() == 2:
            torch.testing.assert_close(q.norm(dim=1), p.norm(dim=1))
        else:
            assert torch.count_nonzero(q) == 0
    again = ls.filter_normalized_direction(params, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(d, again, strict=True))


def test_training_lowers_the_loss_and_the_slice_is_centred_on_it():
    x, y = _data()
    params = ls.init_params("residual", 1, width=8, in_features=6, n_classes=3, seed=0)
    trained, history = ls.train(params, x, y, "residual", steps=30, lr=0.05)
    assert history[-1] < history[0]
    dirs = (ls.filter_normalized_direction(trained, 1), ls.filter_normalized_direction(trained, 2))
    surface = ls.loss_surface(trained, dirs, x, y, "residual", n=5, radius=0.5, chunk=7)
    assert surface.loss.shape == (5, 5) and surface.step == pytest.approx(0.25)
    torch.testing.assert_close(surface.loss[2, 2], ls.loss(trained, x, y, "residual"))


def test_curvature_of_known_surfaces():
    c = torch.linspace(-1, 1, 11, dtype=F64)
    a, b = torch.meshgrid(c, c, indexing="ij")
    saddle = ls.Slice(c, a**2 - b**2)
    lmin, lmax = ls.principal_curvatures(saddle)
    torch.testing.assert_close(lmin, torch.full_like(lmin, -2.0))
    torch.testing.assert_close(lmax, torch.full_like(lmax, 2.0))
    assert ls.nonconvex_share(saddle) == 1.0
    bowl = ls.Slice(c, a**2 + 3 * b**2 + a * b)
    assert ls.nonconvex_share(bowl) == 0.0
    assert ls.nonconvex_share(bowl, radius=0.5) == 0.0
    tilted = ls.Slice(c, a**2 - 0.05 * b**2)  # bends down by 2.5% of the other curvature: within tolerance
    assert ls.nonconvex_share(tilted, tolerance=0.1) == 0.0
    assert ls.nonconvex_share(tilted, tolerance=0.0) == 1.0


def test_nonconvex_points_locate_the_points_the_share_counts():
    c = torch.linspace(-1, 1, 13, dtype=F64)  # spacing 1/6, as in the chapter
    a, b = torch.meshgrid(c, c, indexing="ij")
    cubic = ls.Slice(c, a**2 + b**3)  # curvatures 2 and 6b: bends down where b < 0
    pa, pb, bad = ls.nonconvex_points(cubic, radius=0.5)
    assert len(pa) == len(pb) == len(bad) == 29  # the grid points within radius 0.5 (3 steps)
    assert torch.all(pa**2 + pb**2 <= 0.25 + 1e-12)
    assert torch.equal(bad, pb < -1e-9)
    assert ls.nonconvex_share(cubic, radius=0.5) == bad.double().mean().item() == 11 / 29
    everywhere = ls.nonconvex_points(cubic)
    assert len(everywhere[0]) == 11 * 11


def test_validation():
    with pytest.raises(ValueError, match="`kind`"):
        ls.init_params("dense", 1)
    with pytest.raises(ValueError, match="`n_blocks`"):
        ls.init_params("plain", -1)
    params = ls.init_params("plain", 1, width=4, in_features=6, n_classes=3)
    with pytest.raises(ValueError, match="init_params"):
        ls.forward(params[:-4], torch.zeros(2, 6), "plain")
    with pytest.raises(ValueError, match="`n`"):
        y = torch.zeros(2, dtype=torch.long)
        ls.loss_surface(params, (params, params), torch.zeros(2, 6), y, "plain", n=2)
    with pytest.raises(ValueError, match="`steps`"):
        ls.train(params, torch.zeros(2, 6), torch.zeros(2, dtype=torch.long), "plain", steps=0)


def test_networks_trained_side_by_side_equal_networks_trained_one_at_a_time():
    # The chapter trains its 3 seeds in one batched pass; each must end where its own run ends. float64
    # batched and unbatched products may differ in the last bits; 30 Adam steps keep that far below 1e-9.
    x, y = _data()
    seeds = (0, 1, 2)
    singles = [ls.init_params("residual", 2, width=8, in_features=6, n_classes=3, seed=s) for s in seeds]
    together, history = ls.train(ls.stack(singles), x, y, "residual", steps=30, lr=0.05)
    for i, params in enumerate(singles):
        alone, alone_history = ls.train(params, x, y, "residual", steps=30, lr=0.05)
        for a, b in zip(alone, together, strict=True):
            torch.testing.assert_close(b[i], a, rtol=0, atol=1e-9)
        assert [h[i] for h in history] == pytest.approx(alone_history, abs=1e-9)
    results = ls.experiments("plain", 1, x, y, seeds=(4, 5), width=8, steps=10, n=5)
    assert [r.seed for r in results] == [4, 5]
    alone = ls.experiment("plain", 1, x, y, seed=5, width=8, steps=10, n=5)
    torch.testing.assert_close(results[1].surface.loss, alone.surface.loss, rtol=0, atol=1e-9)


def test_experiments_rejects_bad_seeds():
    x, y = _data()
    with pytest.raises(TypeError, match="`seeds`"):
        ls.experiments("plain", 1, x, y, seeds=3)
    with pytest.raises(ValueError, match="`seeds`"):
        ls.experiments("plain", 1, x, y, seeds=())
    with pytest.raises(ValueError, match="`seed`"):
        ls.experiments("plain", 1, x, y, seeds=(0, -1))
