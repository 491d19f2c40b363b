"""skipflow.stacked: training seeds side by side in one wide network equals training them one at a time."""

from __future__ import annotations

import pytest
import torch
from skipflow import orderings, runtime, stacked
from skipflow.data import load_digits
from skipflow.monitor import GradWeightMonitor
from skipflow.train import train


def _digits64():
    d = load_digits()
    return type(d)(d.x_train.double(), d.y_train, d.x_test.double(), d.y_test, d.n_classes)


def _nets(seeds, **kw):
    nets = []
    for seed in seeds:
        runtime.manual_seed(seed)
        nets.append(orderings.ordered_net(64, 10, 4, 8, **kw).double())
    return nets


@pytest.mark.parametrize(
    "kw",
    [
        {"ordering": "original"},
        {"ordering": "full_preact"},
        {"ordering": "original", "final_norm": True},
        {"ordering": "bn_after_add", "shortcut": "exclusive_gate"},
        {"ordering": "full_preact", "shortcut": "projection"},
        {"ordering": "full_preact", "shortcut": "scaling", "shortcut_scale": 0.5, "branch_scale": 0.5},
    ],
)
def test_side_by_side_equals_one_seed_at_a_time(kw):
    # In float64 the only difference, the order of summation in the wider matrix products, is ~1e-15;
    # 1e-9 (relative) leaves room for its growth over 12 steps at lr 0.1.
    data, seeds = _digits64(), (3, 5)
    alone, together = _nets(seeds, **kw), _nets(seeds, **kw)
    mon_alone, mon_together = GradWeightMonitor(), GradWeightMonitor()
    expected = [
        train(n, data, steps=12, lr=0.1, seed=s, on_step=mon_alone if i == 0 else None, progress=False)
        for i, (n, s) in enumerate(zip(alone, seeds, strict=True))
    ]
    got = stacked.train_side_by_side(together, data, seeds, steps=12, lr=0.1, on_step=mon_together)
    for e, g in zip(expected, got, strict=True):
        assert g.loss == pytest.approx(e.loss, rel=1e-9)
        assert g.test_acc == e.test_acc and g.train_acc == e.train_acc
        assert g.test_loss == pytest.approx(e.test_loss, rel=1e-9)
    torch.testing.assert_close(mon_together.ratios, mon_alone.ratios, rtol=1e-9, atol=0)
    for a, b in zip(alone, together, strict=True):  # weights and running statistics end up the same
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            torch.testing.assert_close(y, x, rtol=1e-9, atol=1e-12, msg=name)


def test_train_seeds_side_by_side_matches_and_falls_back():
    data = load_digits()

    def build():
        return orderings.ordered_net(64, 10, 3, 8, "full_preact")

    one = orderings.train_seeds(build, data, (0, 1), steps=5, lr=0.1)
    both = orderings.train_seeds(build, data, (0, 1), steps=5, lr=0.1, side_by_side=True)
    for a, b in zip(one, both, strict=True):  # float32: round-off only
        assert b.loss == pytest.approx(a.loss, rel=1e-4)

    def dropout():
        return orderings.ordered_net(64, 10, 3, 8, "full_preact", shortcut="dropout")

    one = orderings.train_seeds(dropout, data, (0, 1), steps=5, lr=0.1)
    both = orderings.train_seeds(dropout, data, (0, 1), steps=5, lr=0.1, side_by_side=True)
    assert [h.loss for h in both] == [h.loss for h in one]  # not widened: one seed at a time, bit for bit


def test_what_cannot_be_widened_is_refused():
    assert not stacked.can_widen(_nets((0,), shortcut="dropout"))
    assert not stacked.can_widen([orderings.ordered_net(1, 10, 2, 4, kind="conv")])
    assert not stacked.can_widen(_nets((0,), norm="layer"))
    assert not stacked.can_widen([*_nets((0,)), orderings.ordered_net(64, 10, 5, 8).double()])
    with pytest.raises(ValueError, match="cannot be trained side by side"):
        stacked.widen(_nets((0, 1), shortcut="dropout"))


def test_final_eval_false_skips_the_accuracy_pass():
    runtime.manual_seed(0)
    history = train(orderings.ordered_net(64, 10, 2, 8), load_digits(), steps=3, final_eval=False)
    assert len(history.loss) == 3 and history.test_acc == [] and history.eval_step == []
