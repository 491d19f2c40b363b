"""The degradation problem at small scale: plain and residual MLPs of growing depth, trained on digits.

He et al. (2016) observed that a deeper *plain* network reaches a higher *training* error than a shallower
one, while the residual version does not. :func:`degradation_study` reruns that comparison on sklearn's
digits with MLPs: Kaiming init, BatchNorm, SGD with momentum, and pre-activation residual blocks (two
Linear layers per block, with the final BN-ReLU of He et al. 2016b), the same depth counted in Linear
layers for both kinds.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from skipflow import runtime
from skipflow._validate import check_int
from skipflow.data import Split
from skipflow.models import plain_mlp, residual_mlp
from skipflow.runtime import device
from skipflow.train import History, train

__all__ = ["KINDS", "degradation_model", "degradation_study"]

KINDS = ("plain", "residual")


def degradation_model(kind: str, depth: int, in_features: int = 64, n_classes: int = 10, width: int = 64):
    """The chapter's plain or residual MLP: ``depth`` Linear layers, width 64, Kaiming init, BatchNorm."""
    if kind == "plain":
        return plain_mlp(in_features, n_classes, depth, width, "relu", norm="batch", init="kaiming")
    if kind == "residual":
        return residual_mlp(
            in_features, n_classes, depth, width, "relu", norm="batch", init="kaiming", order="pre"
        )
    raise ValueError(f"`kind` must be 'plain' or 'residual', got {kind!r}.")


def degradation_study(
    data: Split,
    depths: Sequence[int] = (4, 20, 56),
    n_seeds: int = 2,
    steps: int = 60,
    lr: float = 0.02,
    batch_size: int = 128,
) -> dict[tuple[str, int], list[History]]:
    """Train a plain and a residual MLP at each depth, for ``n_seeds`` seeds; return their histories.

    Seed ``s`` fixes both the init and the minibatch order, so plain and residual runs of one seed see the
    same batches. Keys are ``(kind, depth)``; each value holds one :class:`~skipflow.train.History` per
    seed, whose ``train_acc[-1]`` is the final training accuracy.
    """
    if not isinstance(data, Split):
        raise TypeError(f"`data` must be a skipflow.data.Split, got {type(data).__name__}.")
    depths = list(depths)
    if not depths:
        raise ValueError("`depths` must list at least one depth, e.g. (4, 20, 56).")
    for depth in depths:
        check_int("depths[i]", depth, minimum=4)
        if depth % 2:
            raise ValueError(f"`depths` must be even (two layers per residual block), got {depth}.")
    check_int("n_seeds", n_seeds, minimum=1)
    check_int("steps", steps, minimum=1)
    dev = device()
    data = data.to(dev)
    results: dict[tuple[str, int], list[History]] = {}
    for depth in depths:
        for kind in KINDS:
            runs = []
            for seed in range(n_seeds):
                runtime.manual_seed(seed)
                model: nn.Module = degradation_model(kind, depth, data.in_features, data.n_classes or 1)
                runs.append(
                    train(
                        model.to(dev),
                        data,
                        steps=steps,
                        lr=lr,
                        batch_size=batch_size,
                        seed=seed,
                        desc=f"{kind}-{depth}, seed {seed}",
                    )
                )
            results[(kind, depth)] = runs
    return results
