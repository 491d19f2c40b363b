"""Unit tests of skipflow.monitor.GradWeightMonitor and the chapter 4 widget helpers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import skipflow
import torch
from skipflow import orderings
from skipflow.monitor import GradWeightMonitor


def test_monitor_records_every_nth_step_as_on_step(digits):
    net = orderings.ordered_net(64, 10, 2, 8)
    monitor = GradWeightMonitor(every=2)
    skipflow.train.train(net, digits, steps=5, on_step=monitor, progress=False)
    n_layers = len(skipflow.probes.weight_layers(net))
    assert monitor.steps == [0, 2, 4]
    assert monitor.ratios.shape == (3, n_layers)
    assert (monitor.ratios > 0).all()


def test_monitor_ratio_is_grad_norm_over_weight_norm():
    lin = torch.nn.Linear(3, 2)
    lin.weight.grad = torch.ones_like(lin.weight)
    model = torch.nn.Sequential(lin)
    monitor = GradWeightMonitor()
    monitor(0, model)
    expected = lin.weight.grad.norm() / lin.weight.norm()
    assert monitor.ratios[0, 0].item() == pytest.approx(expected.item(), rel=1e-6)


def test_monitor_flags_a_dead_plain_net_and_not_a_healthy_residual_one(digits):
    torch.manual_seed(0)
    dead = skipflow.models.plain_mlp(64, 10, 30, 16)
    m_dead = GradWeightMonitor()
    skipflow.train.train(dead, digits, steps=4, on_step=m_dead, progress=False)
    s = m_dead.summary()
    assert s["flagged"] and s["low_layers"] and s["spread"] > 5
    assert "barely learn" in m_dead.report()

    torch.manual_seed(0)
    healthy = orderings.ordered_net(64, 10, 4, 16)
    m_ok = GradWeightMonitor()
    skipflow.train.train(healthy, digits, steps=4, on_step=m_ok, progress=False)
    assert not m_ok.summary()["flagged"]
    assert "nothing flagged" in m_ok.report()


def test_monitor_flags_fast_layers():
    lin = torch.nn.Linear(3, 2)
    lin.weight.grad = 100 * lin.weight.detach().clone()
    monitor = GradWeightMonitor(high=1.0)
    monitor(0, torch.nn.Sequential(lin))
    assert monitor.summary()["high_layers"] == [0]
    assert "too fast" in monitor.report()


def test_monitor_plot_and_errors():
    monitor = GradWeightMonitor()
    with pytest.raises(ValueError, match="recorded nothing"):
        monitor.summary()
    with pytest.raises(ValueError, match="recorded nothing"):
        monitor.plot()
    lin = torch.nn.Linear(3, 2)
    lin.weight.grad = torch.ones_like(lin.weight)
    for step in range(3):
        monitor(step, torch.nn.Sequential(lin))
    ax = monitor.plot()
    assert ax.get_xlabel() == "training step" and ax.get_title()
    plt.close("all")


@pytest.mark.parametrize(
    "kwargs, err, word",
    [
        (dict(every=0), ValueError, "every"),
        (dict(low=0.0), ValueError, "low"),
        (dict(low=1.0, high=0.5), ValueError, "low"),
        (dict(every=1.5), TypeError, "every"),
    ],
)
def test_monitor_validates_arguments(kwargs, err, word):
    with pytest.raises(err, match=word):
        GradWeightMonitor(**kwargs)


def test_ordering_gradients_shape_and_validation():
    runs = skipflow.widgets.ordering_gradients("full_preact", n_blocks=3, train_steps=0, n_seeds=2)
    assert runs.shape == (2, 4) and (runs > 0).all()
    with pytest.raises(ValueError, match="ordering"):
        skipflow.widgets.ordering_gradients("pre")
    with pytest.raises(ValueError, match="n_seeds"):
        skipflow.widgets.ordering_gradients(n_seeds=0)


def test_plot_ordering_gradients_draws_reference():
    ax = skipflow.widgets.plot_ordering_gradients("original", n_blocks=3, n_seeds=1)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("original" in s for s in labels) and any("full pre-activation" in s for s in labels)
    plt.close("all")


def test_plot_ordering_gradients_uses_precomputed_runs_and_checks_their_shape():
    runs = {"original": torch.ones(2, 4), "full_preact": torch.full((2, 4), 2.0)}
    ax = skipflow.widgets.plot_ordering_gradients("original", n_blocks=3, precomputed=runs)
    assert len(ax.get_lines()) == 2
    plt.close("all")
    with pytest.raises(ValueError, match="precomputed"):
        skipflow.widgets.plot_ordering_gradients("original", n_blocks=5, precomputed=runs)


def _monitor_with(scale: float) -> GradWeightMonitor:
    monitor = GradWeightMonitor()
    lin = torch.nn.Linear(3, 2)
    for step in range(3):
        lin.weight.grad = scale * lin.weight.detach().clone()
        monitor(step, torch.nn.Sequential(lin))
    return monitor


def test_plot_monitors_shares_one_colour_scale():
    from skipflow.monitor import plot_monitors

    small, large = _monitor_with(1e-6), _monitor_with(1e-1)
    fig = plot_monitors({"small": small, "large": large})
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2
    # one scale for both panels, spanning both monitors' log10 ratios (about -6 and -1)
    assert images[0].get_clim() == images[1].get_clim()
    low, high = images[0].get_clim()
    assert low == pytest.approx(-6, abs=0.01) and high == pytest.approx(-1, abs=0.01)
    assert sum(1 for ax in fig.axes if not ax.images) == 1  # one colour bar for all panels
    plt.close("all")


def test_plot_monitors_names_the_thresholds_on_the_colour_bar():
    from skipflow.monitor import plot_monitors

    # log10 ratios from about -7 to 0.3: both thresholds (low = 1e-5, high = 1) lie on the scale
    fig = plot_monitors({"small": _monitor_with(1e-7), "large": _monitor_with(2.0)})
    (bar_ax,) = [ax for ax in fig.axes if not ax.images]
    fig.canvas.draw()
    labels = [t.get_text() for t in bar_ax.get_yticklabels()]
    assert "low (−5)" in labels and "high (0)" in labels
    lines = [line for line in bar_ax.get_lines() if line.get_linestyle() in ("--", ":")]
    assert sorted(line.get_linestyle() for line in lines) == ["--", ":"]
    assert all(line.get_color() == "black" for line in lines)
    plt.close("all")


@pytest.mark.parametrize("bad, err", [({}, ValueError), ([], ValueError), ({"a": object()}, TypeError)])
def test_plot_monitors_rejects_bad_input(bad, err):
    from skipflow.monitor import plot_monitors

    with pytest.raises(err, match="monitors"):
        plot_monitors(bad)
