"""Chapter 5's fast paths compute what the slow ones do: batched seeds, stream variances, explorer grid."""

import copy

import pytest
import skipflow
import torch
from skipflow import explorers, models, normfree, seedstack, train
from skipflow import stochastic_depth as sd


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models, as in the chapter; a busy machine punishes a second thread
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    return skipflow.data.load_digits()


def _pair(build, n_seeds=3):
    nets = []
    for seed in range(n_seeds):
        skipflow.runtime.manual_seed(seed)
        nets.append(build())
    return nets, [copy.deepcopy(n) for n in nets]


def _assert_same_runs(batched, separate, hb, hs, loss_tol, param_tol):
    for h, g in zip(hs, hb, strict=True):
        assert len(h.loss) == len(g.loss) and h.diverged == g.diverged
        finite = [(a, b) for a, b in zip(h.loss, g.loss, strict=True) if a == a and abs(a) < 1e30]
        assert max((abs(a - b) / (1 + abs(a)) for a, b in finite), default=0.0) <= loss_tol
        assert h.test_acc == g.test_acc and h.train_acc == g.train_acc
    for a, b in zip(separate, batched, strict=True):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            if p.dtype.is_floating_point and torch.isfinite(p).all():
                assert (p - q).abs().max() <= param_tol * (1 + p.abs().max()), name
            elif not p.dtype.is_floating_point:
                assert torch.equal(p, q), name


@pytest.mark.parametrize("fix", ["none", "sqrt_depth", "rezero", "fixup", "batchnorm"])
def test_train_seeds_equals_one_run_per_seed(digits, fix):
    # Relative float tolerance: batched and unbatched matrix products may round differently (~1e-7 per step).
    batched, separate = _pair(lambda: normfree.build(fix, 3, width=32))
    hs = [train.train(n, digits, steps=10, lr=0.02, seed=s, progress=False) for s, n in enumerate(separate)]
    hb = seedstack.train_seeds(batched, digits, seeds=[0, 1, 2], steps=10, lr=0.02)
    _assert_same_runs(batched, separate, hb, hs, loss_tol=1e-5, param_tol=1e-4)
    if fix == "none":
        assert all(h.diverged for h in hb) or all(not h.diverged for h in hb)


def test_train_seeds_mixes_fixed_and_learnable_branch_scales(digits):
    def group():
        return [normfree.build(fix, 3, width=32) for fix in ("sqrt_depth", "rezero", "fixup")]

    skipflow.runtime.manual_seed(0)
    batched = group()
    separate = [copy.deepcopy(n) for n in batched]
    hs = [train.train(n, digits, steps=10, lr=0.02, seed=0, progress=False) for n in separate]
    hb = seedstack.train_seeds(batched, digits, seeds=[0, 0, 0], steps=10, lr=0.02)
    _assert_same_runs(batched, separate, hb, hs, loss_tol=1e-5, param_tol=1e-4)
    assert float(batched[0].blocks[0].alpha) == float(torch.tensor(3**-0.5))  # the fixed 1/√L did not move
    assert float(batched[1].blocks[0].alpha.detach()) != 0.0  # ReZero's α did


def test_train_seeds_with_stochastic_depth_equals_one_run_per_seed(digits):
    small = digits.subset(200, seed=0)

    def build():
        return sd.add_stochastic_depth(models.residual_mlp(64, 10, 2 + 2 * 4, 32, norm="batch"), 0.5)

    batched, separate = _pair(build)
    kw = {"steps": 12, "lr": 0.02, "batch_size": 50}
    hs = [train.train(n, small, seed=s, progress=False, **kw) for s, n in enumerate(separate)]
    hb = seedstack.train_seeds(batched, small, seeds=[0, 1, 2], **kw)
    _assert_same_runs(batched, separate, hb, hs, loss_tol=1e-5, param_tol=1e-4)


def test_train_seeds_rejects_what_it_cannot_stack(digits):
    with pytest.raises(ValueError, match="one seed per net"):
        seedstack.train_seeds([models.plain_mlp(64, 10, 4)], digits, seeds=[0, 1])
    with pytest.raises(ValueError, match="same architecture"):
        seedstack.train_seeds(
            [models.plain_mlp(64, 10, 4), models.residual_mlp(64, 10, 4, norm=None)], digits, seeds=[0, 1]
        )
    with pytest.raises(TypeError, match="nets"):
        seedstack.train_seeds([], digits, seeds=[])


def test_stream_variances_leaves_the_net_as_it_was(digits):
    skipflow.runtime.manual_seed(0)
    net = normfree.build("batchnorm", 6).eval()
    before = copy.deepcopy(net.state_dict())
    ref = normfree.stream_variances(copy.deepcopy(net), digits.x_train[:64])
    got = normfree.stream_variances(net, digits.x_train[:64])
    assert torch.equal(ref, got)
    assert not any(m.training for m in net.modules())
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


def test_explorer_grid_equals_branch_scale_variances():
    grid = explorers._branch_scale_grid((4, 8), 2)
    for alpha in explorers.BRANCH_SCALES:
        for n in (4, 8):
            assert torch.equal(grid[alpha, n], explorers.branch_scale_variances(alpha, n, n_seeds=2))
