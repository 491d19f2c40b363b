"""Unit tests of chapter 1's new measurements: skipflow.shattered, chain.signal_passes and glue_figure."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch
from skipflow import chain, degradation, models, runtime, shattered
from skipflow.display import glue_figure
from torch import nn
from torch.nn import functional as F

matplotlib.use("Agg")


# ------------------------------------------------------------------ shattered
def test_sweep_is_evenly_spaced_and_validated():
    x = shattered.sweep(5, -1.0, 1.0)
    assert x.shape == (5, 1) and x.dtype == torch.float64
    assert torch.allclose(x.squeeze(1), torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="high"):
        shattered.sweep(5, 1.0, 1.0)
    with pytest.raises(ValueError, match="n_points"):
        shattered.sweep(2)


def test_neighbour_correlation_of_smooth_and_white_signals():
    t = torch.linspace(0, 1, 500, dtype=torch.float64)
    assert shattered.neighbour_correlation(torch.sin(2 * math.pi * t)) > 0.99
    noise = torch.randn(5000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(shattered.neighbour_correlation(noise)) < 0.05  # white noise: about 1/sqrt(5000)
    alternating = torch.tensor([1.0, -1.0] * 50)
    assert shattered.neighbour_correlation(alternating) == pytest.approx(-1.0)
    assert shattered.neighbour_correlation(alternating, lag=2) == pytest.approx(1.0)


def test_neighbour_correlation_validates():
    with pytest.raises(ValueError, match="1-D"):
        shattered.neighbour_correlation(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="constant"):
        shattered.neighbour_correlation(torch.ones(10))
    with pytest.raises(ValueError, match="too short"):
        shattered.neighbour_correlation(torch.arange(4.0), lag=2)


def test_freeze_batchnorm_uses_the_sweep_statistics():
    runtime.manual_seed(0)
    net = degradation.degradation_model("plain", 6, in_features=1, n_classes=1).double()
    x = shattered.sweep(64)
    net.train()
    with torch.no_grad():
        train_out = net(x)  # BatchNorm with the batch's statistics
    shattered.freeze_batchnorm(net, x)
    assert not net.training
    with torch.no_grad():
        frozen_out = net(x)  # the same statistics, now as fixed numbers
    assert torch.allclose(frozen_out, train_out, atol=1e-10)
    assert all(m.momentum == 0.1 for m in net.modules() if isinstance(m, nn.BatchNorm1d))  # restored


def test_input_gradients_match_finite_differences_and_are_per_row():
    runtime.manual_seed(0)
    net = degradation.degradation_model("residual", 8, in_features=1, n_classes=1).double()
    x = shattered.sweep(32)
    shattered.freeze_batchnorm(net, x)
    g = shattered.input_gradients(net, x)
    eps = 1e-6
    with torch.no_grad():
        fd = ((net(x + eps) - net(x - eps)) / (2 * eps)).squeeze(1)
    assert torch.allclose(g, fd, atol=1e-5)
    # Each row's gradient depends only on that row: a sub-batch gives the same numbers.
    assert torch.allclose(shattered.input_gradients(net, x[:5]), g[:5])


def test_input_gradients_refuse_coupled_rows_and_wrong_shapes():
    net = degradation.degradation_model("plain", 4, in_features=1, n_classes=1).double().train()
    with pytest.raises(ValueError, match="freeze_batchnorm"):
        shattered.input_gradients(net, shattered.sweep(8))
    with pytest.raises(ValueError, match="n_points, 1"):
        shattered.input_gradients(net.eval(), torch.zeros(8, 2, dtype=torch.float64))


def test_shattering_study_shapes_determinism_and_the_effect():
    result = shattered.shattering_study(depths=(4, 20), n_seeds=2, n_points=128)
    assert result.depths == [4, 20]
    assert result.x.shape == (128,)
    for kind in degradation.KINDS:
        assert result.correlation[kind].shape == (2, 2)
        assert result.gradients[kind].shape == (2, 128)
    again = shattered.shattering_study(depths=(4, 20), n_seeds=2, n_points=128)
    assert torch.equal(result.correlation["plain"], again.correlation["plain"])
    # Shallow nets are smooth; the depth-20 plain net has shattered, the residual one much less.
    assert (result.correlation["plain"][:, 0] > 0.8).all()
    assert (result.correlation["plain"][:, 1].abs() < 0.3).all()
    assert (result.correlation["residual"][:, 1] > result.correlation["plain"][:, 1]).all()


def test_shattering_study_validates():
    with pytest.raises(ValueError, match="even"):
        shattered.shattering_study(depths=(5,))
    with pytest.raises(ValueError, match="at least one"):
        shattered.shattering_study(depths=())


# ------------------------------------------------------------------ chain.signal_passes
def test_signal_passes_match_a_manual_computation():
    runtime.manual_seed(0)
    net = models.plain_mlp(6, 3, depth=4, width=8, activation="relu").double()
    x = torch.randn(16, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(2))
    passes = chain.signal_passes(net, x, y)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert passes.forward.shape == passes.backward.shape == (len(linears),)
    # By hand: the pre-activations of every Linear layer, and the gradient of the summed loss at each.
    pre, h = [], x
    for k, lin in enumerate(linears):
        a = lin(h).detach().requires_grad_(True) if k == 0 else lin(h)
        a.retain_grad()
        pre.append(a)
        h = torch.relu(a) if k < len(linears) - 1 else a
    F.cross_entropy(h, y, reduction="sum").backward()
    assert torch.allclose(passes.forward, torch.stack([a.detach().std() for a in pre]))
    assert torch.allclose(passes.backward, torch.stack([a.grad.pow(2).sum(1).mean().sqrt() for a in pre]))
    assert all(not m._forward_hooks for m in linears)  # the hooks were removed


def test_signal_passes_validate():
    net = models.plain_mlp(6, 3, depth=3, width=8)
    with pytest.raises(ValueError, match="2-D"):
        chain.signal_passes(net, torch.zeros(6), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"no nn\.Linear"):
        chain.signal_passes(nn.ReLU(), torch.zeros(2, 6), torch.zeros(2, dtype=torch.long))


# ------------------------------------------------------------------ glue_figure
def test_glue_figure_renders_once_and_closes_the_figure(monkeypatch):
    import matplotlib.pyplot as plt
    import myst_nb

    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: calls.append((name, value, display)))
    fig, _ = plt.subplots()
    assert glue_figure("fig_test", fig) is None  # a call on a cell's last line displays nothing more
    assert calls == [("fig_test", fig, True)]  # glued and shown under the cell in one rendering
    assert not plt.fignum_exists(fig.number)  # closed: the inline backend will not render it again
    with pytest.raises(ValueError, match="identifier"):
        glue_figure("not a name", fig)


def _image_width_px(fig) -> int:
    """The width of the PNG the inline backend would show: saved at the figure's dpi, cropped "tight"."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, bbox_inches="tight")
    return Image.open(io.BytesIO(buffer.getvalue())).width


def test_rendered_text_px_follows_the_column():
    import matplotlib.pyplot as plt
    from skipflow.plots import COLUMN_PX, rendered_text_px

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.set_title("t", fontsize=9)
    ax.tick_params(labelsize=12)
    # about 500 px wide fits the column: 9 pt at 100 dpi is 12.5 px
    assert rendered_text_px(fig) == pytest.approx(9 / 72 * 100)
    fig.set_size_inches(2 * COLUMN_PX / 100, 3)  # about twice the column: shrunk to fit it
    shrink = COLUMN_PX / _image_width_px(fig)
    assert 0.5 < shrink < 0.7  # the tight crop removes most of the figure's empty side margins
    assert rendered_text_px(fig) == pytest.approx(9 / 72 * 100 * shrink, rel=0.01)  # ±1 px of crop rounding
    ax.title.set_visible(False)  # hidden text does not count: the 12-pt tick labels are now the smallest
    assert rendered_text_px(fig) == pytest.approx(12 / 72 * 100 * shrink, rel=0.01)
    with pytest.raises(ValueError, match="column_px"):
        rendered_text_px(fig, column_px=0)
    plt.close(fig)


def test_a_legend_outside_the_axes_widens_the_image_and_shrinks_its_text():
    import matplotlib.pyplot as plt
    from skipflow.plots import COLUMN_PX, rendered_text_px

    fig, ax = plt.subplots(figsize=(COLUMN_PX / 100, 3), dpi=100)  # exactly the column wide
    ax.plot([0, 1], label="a long legend entry that sits right of the axes")
    ax.tick_params(labelsize=12)
    ax.legend(fontsize=12, loc="upper left", bbox_to_anchor=(1.02, 1))
    width = _image_width_px(fig)
    assert width > COLUMN_PX * 1.2  # the legend made the saved image wider than the figure
    # the figure's own width would say 12 pt = 16.7 px; the page shrinks the wider image to the column
    assert rendered_text_px(fig) == pytest.approx(12 / 72 * 100 * COLUMN_PX / width, rel=0.01)
    plt.close(fig)


def test_glue_figure_refuses_a_figure_too_small_to_read(monkeypatch):
    import matplotlib.pyplot as plt
    import myst_nb

    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: calls.append(name))
    fig, _ = plt.subplots(1, 3, figsize=(16, 4))  # 1600 px shrunk to 690: 10-pt ticks become 6 px
    with pytest.raises(ValueError, match=r"fig_wide.*px"):
        glue_figure("fig_wide", fig)
    assert calls == [] and not plt.fignum_exists(fig.number)  # not glued, and closed
