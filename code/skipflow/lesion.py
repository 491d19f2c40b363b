"""Lesion studies: delete or reorder the blocks of a trained network at test time.

Every function returns a *new* model (a deep copy) and leaves the caller's model untouched, so one trained
network can be lesioned many times. The models are :class:`skipflow.models.Net`, whose ``blocks`` is an
``nn.ModuleList``; the stem, ``final`` and head are kept as they are.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from skipflow import runtime
from skipflow._validate import check_int
from skipflow.train import evaluate


def _check_net(net: object) -> nn.Module:
    if not isinstance(net, nn.Module) or not isinstance(getattr(net, "blocks", None), nn.ModuleList):
        raise TypeError(
            f"`net` must be a skipflow.models.Net (with an nn.ModuleList `blocks`), got {type(net).__name__}."
        )
    return net


def _with_blocks(net: nn.Module, order: Sequence[int]) -> nn.Module:
    new = copy.deepcopy(net)
    new.blocks = nn.ModuleList([new.blocks[i] for i in order])
    return new


def _view(net: nn.Module, order: Sequence[int]) -> nn.Module:
    """A network that runs ``net``'s own blocks in ``order``, sharing every module (no copy): to evaluate.

    Only the view's module table is new, so ``net`` keeps its blocks; evaluating the view reads the trained
    weights and sets and restores the modules' train/eval mode, as evaluating ``net`` itself does.
    """
    new = copy.copy(net)
    new._modules = dict(net._modules)
    new.blocks = nn.ModuleList([net.blocks[i] for i in order])
    return new


def _lesioned(net: nn.Module, order: Sequence[int], share_weights: bool) -> nn.Module:
    return _view(net, order) if share_weights else _with_blocks(net, order)


def _check_index(name: str, i: object, n: int) -> int:
    check_int(name, i)
    if not -n <= i < n:
        raise ValueError(f"`{name}`={i} is out of range for a network of {n} blocks (use 0 … {n - 1}).")
    return i % n


def delete_blocks(net: nn.Module, indices: int | Sequence[int]) -> nn.Module:
    """A copy of ``net`` without the blocks at ``indices`` (0-based; negative indices count from the end)."""
    _check_net(net)
    n = len(net.blocks)
    if isinstance(indices, int) and not isinstance(indices, bool):
        indices = [indices]
    if not isinstance(indices, Sequence | torch.Tensor):
        raise TypeError(f"`indices` must be an int or a sequence of ints, got {type(indices).__name__}.")
    drop = {_check_index("indices", int(i), n) for i in indices}
    return _with_blocks(net, [i for i in range(n) if i not in drop])


def reorder_blocks(net: nn.Module, order: Sequence[int]) -> nn.Module:
    """A copy of ``net`` whose blocks run in ``order``, a permutation of 0 … n−1."""
    _check_net(net)
    n = len(net.blocks)
    order = [int(i) for i in order]
    if sorted(order) != list(range(n)):
        raise ValueError(
            f"`order` must be a permutation of 0 … {n - 1} (each block exactly once), got {order}."
        )
    return _with_blocks(net, order)


def swap_blocks(net: nn.Module, i: int, j: int) -> nn.Module:
    """A copy of ``net`` with blocks ``i`` and ``j`` exchanged."""
    _check_net(net)
    n = len(net.blocks)
    i, j = _check_index("i", i, n), _check_index("j", j, n)
    order = list(range(n))
    order[i], order[j] = order[j], order[i]
    return _with_blocks(net, order)


def random_swaps(n_blocks: int, n_swaps: int, generator: torch.Generator) -> list[int]:
    """An order of ``n_blocks`` blocks after ``n_swaps`` swaps of two blocks chosen at random."""
    check_int("n_blocks", n_blocks, minimum=2)
    check_int("n_swaps", n_swaps, minimum=0)
    order = list(range(n_blocks))
    for _ in range(n_swaps):
        i, j = torch.randperm(n_blocks, generator=generator)[:2].tolist()
        order[i], order[j] = order[j], order[i]
    return order


def kendall_tau(order: Sequence[int]) -> float:
    """Kendall's rank correlation between ``order`` and 0 … n−1: 1 for the original order, −1 reversed."""
    order = [int(i) for i in order]
    n = len(order)
    if n < 2:
        raise ValueError("`order` needs at least two entries for a rank correlation.")
    concordant = sum(
        1 if order[a] < order[b] else -1 for a in range(n) for b in range(a + 1, n) if order[a] != order[b]
    )
    return concordant / math.comb(n, 2)


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Test accuracy of ``net`` on ``(x, y)`` in eval mode (the model's mode is restored)."""
    return evaluate(net, x, y)[1]


@torch.no_grad()
def branch_ratios(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """‖h_l − h_{l-1}‖ / ‖h_{l-1}‖ for each block in eval mode: how much block l changes the stream it reads.

    For a pre-activation block this is ‖α F_l(h_{l-1})‖ / ‖h_{l-1}‖, the size of the branch's contribution.
    """
    _check_net(net)
    was_training = net.training
    net.eval()
    ratios, h = [], net.stem(x)
    for block in net.blocks:
        out = block(h)
        ratios.append((out - h).norm() / h.norm().clamp_min(1e-12))
        h = out
    net.train(was_training)
    return torch.stack(ratios).cpu()


def single_deletion(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, share_weights: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Test loss and accuracy after deleting each block in turn: entry i is the network without block i.

    Returns ``(loss, accuracy)``, each of length ``len(net.blocks)``. With ``share_weights=True`` each
    lesioned network is evaluated as a view that runs ``net``'s own blocks (no deep copy): the same numbers,
    many times faster, and ``net`` is left as it was.
    """
    _check_net(net)
    n = len(net.blocks)
    results = [
        evaluate(_lesioned(net, [j for j in range(n) if j != i], share_weights), x, y) for i in range(n)
    ]
    return torch.tensor([r[0] for r in results]), torch.tensor([r[1] for r in results])


def random_deletion_accuracy(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    ks: Sequence[int],
    samples: int = 5,
    seed: int = 0,
    share_weights: bool = False,
) -> torch.Tensor:
    """Accuracy after deleting k blocks chosen at random, ``samples`` draws for each k in ``ks``.

    Returns a tensor of shape (len(ks), samples). ``share_weights`` as in :func:`single_deletion`.
    """
    _check_net(net)
    check_int("samples", samples, minimum=1)
    n = len(net.blocks)
    for k in ks:
        check_int("ks", k, minimum=0)
        if k >= n:
            raise ValueError(f"`ks` contains {k}, but the network has only {n} blocks; keep k < {n}.")
    gen = runtime.generator(seed)
    rows = []
    for k in ks:
        row = []
        for _ in range(samples):
            drop = set(torch.randperm(n, generator=gen)[:k].tolist())
            row.append(accuracy(_lesioned(net, [i for i in range(n) if i not in drop], share_weights), x, y))
        rows.append(row)
    return torch.tensor(rows)


def random_reorder_accuracy(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    swaps: Sequence[int],
    samples: int = 5,
    seed: int = 0,
    share_weights: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accuracy after ``s`` random swaps of two blocks, ``samples`` draws for each ``s`` in ``swaps``.

    Returns ``(accuracy, tau)``, both of shape (len(swaps), samples); ``tau`` is the Kendall correlation of
    each shuffled order with the original one, the measure of how far it was shuffled. ``share_weights`` as
    in :func:`single_deletion`.
    """
    _check_net(net)
    check_int("samples", samples, minimum=1)
    gen = runtime.generator(seed)
    acc, tau = [], []
    for s in swaps:
        check_int("swaps", s, minimum=0)
        orders = [random_swaps(len(net.blocks), s, gen) for _ in range(samples)]
        acc.append([accuracy(_lesioned(net, o, share_weights), x, y) for o in orders])
        tau.append([kendall_tau(o) for o in orders])
    return torch.tensor(acc), torch.tensor(tau)
