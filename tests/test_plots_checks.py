"""Unit tests of skipflow.plots and of the checker pattern in skipflow.checks."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import skipflow
import torch
from skipflow import plots
from skipflow.checks import _core
from skipflow.train import History
from torch import nn


def test_smooth_is_a_trailing_mean():
    out = plots.smooth([1.0, 2.0, 3.0, 4.0], window=2)
    assert np.allclose(out, [1.0, 1.5, 2.5, 3.5])
    with pytest.raises(ValueError, match="`window`"):
        plots.smooth([1.0], window=0)


def test_plot_per_layer_draws_one_line_per_series_on_a_log_axis():
    fig, ax = plt.subplots()
    plots.plot_per_layer({"plain": torch.tensor([1.0, 0.1]), "residual": [1.0, 0.9]}, ax=ax, title="t")
    assert len(ax.lines) == 2 and ax.get_yscale() == "log" and ax.get_title() == "t"
    assert list(ax.lines[0].get_xdata()) == [1, 2]
    plt.close(fig)
    with pytest.raises(TypeError, match="`series`"):
        plots.plot_per_layer({})


def test_plot_band_and_losses_show_the_spread():
    fig, ax = plt.subplots()
    plots.plot_band([[1, 2, 3], [3, 4, 5]], ax, label="runs")
    assert np.allclose(ax.lines[0].get_ydata(), [2, 3, 4])  # the median of two rows is their mean
    with pytest.raises(ValueError, match="2-D"):
        plots.plot_band([1, 2, 3], ax, label="x")
    plt.close(fig)
    histories = {"a": [History(loss=[1.0, 0.5, 0.25]), History(loss=[1.0, 0.6, 0.3])]}
    ax = plots.plot_losses(histories, window=1)
    assert ax.get_yscale() == "log" and "2 seeds" in ax.get_legend().get_texts()[0].get_text()
    plt.close("all")


def test_use_style_sets_the_course_palette():
    plots.use_style()
    assert matplotlib.rcParams["axes.grid"] is True
    assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][0] == plots.CYCLE[0]


# --- the checker pattern ---------------------------------------------------------------------------


@_core.exercise("Demo")
def check_double(fn):
    _core.require_close(_core.call(fn, 2.0), 4.0, "fn(2)")


def test_checker_verdicts(capsys):
    assert check_double(lambda v: 2 * v) is True
    assert "correct" in capsys.readouterr().out
    assert check_double(None) is False
    assert "not solved yet" in capsys.readouterr().out
    assert check_double(lambda v: None) is False  # a stub that returns its placeholder
    assert "not solved yet" in capsys.readouterr().out
    assert check_double(lambda v: v + 1) is False
    out = capsys.readouterr().out
    assert "expected 4" in out and "got 3" in out
    assert check_double(lambda v: v["x"]) is False
    out = capsys.readouterr().out
    assert "your code raised TypeError" in out and "Traceback" not in out
    assert check_double(42) is False
    assert "expected a function" in capsys.readouterr().out
    assert check_double(lambda v: "four") is False
    assert "should be a number" in capsys.readouterr().out
    assert check_double(lambda v: torch.ones(2)) is False
    assert "single number" in capsys.readouterr().out


def test_a_bug_in_a_checker_is_not_blamed_on_the_reader(capsys):
    @_core.exercise("Broken")
    def broken(fn):
        raise KeyError("internal")

    assert broken(lambda: 1) is False
    out = capsys.readouterr().out
    assert "checker itself failed" in out and "not yours" in out


def test_as_tensor_explains_what_it_needs():
    assert torch.equal(_core.as_tensor([1, 2], "x"), torch.tensor([1.0, 2.0], dtype=torch.float64))
    with pytest.raises(_core.Incorrect, match="should be a tensor"):
        _core.as_tensor(object(), "x")


def reference_count(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_count_parameters_checker(capsys):
    assert skipflow.checks.count_parameters(reference_count)
    capsys.readouterr()
    # plausible mistakes, each with a hint that points at the fix
    assert not skipflow.checks.count_parameters(lambda m: sum(p.numel() for p in m.parameters()))
    assert "requires_grad" in capsys.readouterr().out
    assert not skipflow.checks.count_parameters(lambda m: m.weight.numel() if hasattr(m, "weight") else 0)
    assert "bias" in capsys.readouterr().out
    assert not skipflow.checks.count_parameters(
        lambda m: sum(
            p.numel() for mod in m.modules() if isinstance(mod, nn.Linear) for p in mod.parameters()
        )
    )
    assert "BatchNorm" in capsys.readouterr().out
    assert not skipflow.checks.count_parameters(lambda m: len(list(m.parameters())))
    assert "not quite" in capsys.readouterr().out
    assert not skipflow.checks.count_parameters(lambda m: m.nonexistent)
    assert "AttributeError" in capsys.readouterr().out
