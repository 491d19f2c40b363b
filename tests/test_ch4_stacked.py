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


def test_networks_that_differ_only_before_the_head_train_side_by_side():
    # Post-activation nets and their control (a BN -> ReLU before the head) share the trunk: the wide net
    # widens stem and blocks and runs each net's own final and head. Same check as above, in float64.
    data, seeds = _digits64(), (3, 5)
    kinds = ({"ordering": "original"}, {"ordering": "original", "final_norm": True})
    alone = [net for kw in kinds for net in _nets(seeds, **kw)]
    together = [net for kw in kinds for net in _nets(seeds, **kw)]
    assert stacked.can_widen(together)
    monitors = {i: (GradWeightMonitor(), GradWeightMonitor()) for i in (0, 2)}
    expected = [
        train(
            n,
            data,
            steps=10,
            lr=0.1,
            seed=s,
            on_step=monitors[i][0] if i in monitors else None,
            progress=False,
        )
        for i, (n, s) in enumerate(zip(alone, seeds * 2, strict=True))
    ]
    callbacks = {i: pair[1] for i, pair in monitors.items()}
    got = stacked.train_side_by_side(together, data, list(seeds) * 2, steps=10, lr=0.1, on_step=callbacks)
    for e, g in zip(expected, got, strict=True):
        assert g.loss == pytest.approx(e.loss, rel=1e-9)
        assert g.test_loss == pytest.approx(e.test_loss, rel=1e-9)
    for one, wide in monitors.values():
        torch.testing.assert_close(wide.ratios, one.ratios, rtol=1e-9, atol=0)
    for a, b in zip(alone, together, strict=True):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            torch.testing.assert_close(y, x, rtol=1e-9, atol=1e-12, msg=name)


def test_train_configs_groups_what_widens_and_matches_training_alone():
    data = load_digits()
    builds = {
        "post": lambda: orderings.ordered_net(64, 10, 3, 8, "original"),
        "pre": lambda: orderings.ordered_net(64, 10, 3, 8, "full_preact"),
        "control": lambda: orderings.ordered_net(64, 10, 3, 8, "original", final_norm=True),
    }
    mon_one, mon_both = GradWeightMonitor(), GradWeightMonitor()
    both = orderings.train_configs(
        builds, data, (0, 1), on_step={"control": mon_both}, side_by_side=True, steps=5, lr=0.1
    )
    assert list(both) == ["post", "pre", "control"]
    for name, build in builds.items():
        hook = mon_one if name == "control" else None
        one = orderings.train_seeds(build, data, (0, 1), on_step=hook, steps=5, lr=0.1)
        for a, b in zip(one, both[name], strict=True):  # float32: round-off only
            assert b.loss == pytest.approx(a.loss, rel=1e-4)
    torch.testing.assert_close(mon_both.ratios, mon_one.ratios, rtol=1e-3, atol=0)


def test_train_configs_rejects_bad_arguments():
    data = load_digits()
    with pytest.raises(TypeError, match="builds"):
        orderings.train_configs({}, data)
    with pytest.raises(TypeError, match="builds\\['a'\\]"):
        orderings.train_configs({"a": 3}, data)
    with pytest.raises(ValueError, match="on_step"):
        orderings.train_configs({"a": lambda: None}, data, on_step={"b": print})
    with pytest.raises(ValueError, match="on_step"):
        stacked.train_side_by_side(_nets((0, 1)), load_digits(), (0, 1), steps=1, on_step={5: print})


def test_blocks_that_differ_only_in_their_settings_are_not_widened_together():
    # identity and constant-scaling shortcuts have the same parameters; only the blocks' settings differ
    identity = _nets((0,), ordering="full_preact")
    scaled = _nets((0,), ordering="full_preact", shortcut="scaling", shortcut_scale=0.5, branch_scale=1.0)
    other_scale = _nets(
        (0,), ordering="full_preact", shortcut="scaling", shortcut_scale=0.9, branch_scale=1.0
    )
    assert not stacked.can_widen(identity + scaled)
    assert not stacked.can_widen(scaled + other_scale)
    assert stacked.can_widen(
        scaled + _nets((1,), ordering="full_preact", shortcut="scaling", shortcut_scale=0.5, branch_scale=1.0)
    )
    with pytest.raises(ValueError, match="same architecture"):
        stacked.widen(identity + scaled)
