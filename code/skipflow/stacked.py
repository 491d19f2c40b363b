"""Train several seeds of one small MLP side by side, as one wide network (chapter 4's fast path).

The networks of chapter 4 are so small (width 32) that most of a training step's CPU time goes into
calling PyTorch operations rather than into their arithmetic. :func:`widen` therefore puts S networks
whose trunks (stem and blocks) share one architecture (S seeds, or settings that differ only before the
head) *side by side* in one network S times as wide:

- each ``Linear`` becomes one ``Linear`` whose weight is the block-diagonal matrix of the S weights (and
  whose bias is their concatenation), so seed s's features only ever see seed s's features;
- each ``BatchNorm1d`` becomes one over S·C channels: BN's statistics are per channel, so each seed is
  normalized with its own batch statistics and keeps its own running statistics;
- activations, additions and constant scalings act elementwise and need no change;
- ``final`` and ``head`` are not widened: each network's own modules act on its slice of the features.

The input is the S minibatches side by side along the features, and the loss is the *sum* of the S
per-seed losses, so each block of the gradient is exactly that seed's own gradient; the off-diagonal
blocks of each weight's gradient (the cross terms) are zeroed before every step, so the off-diagonal
weights stay exactly zero under SGD (with momentum and weight decay) and Adam, which act elementwise.
Up to float round-off (a larger matrix product sums in another order), :func:`train_side_by_side`
computes what :func:`skipflow.train.train` computes for each seed in turn; ``tests/test_ch4_stacked.py``
checks this. The S original networks share storage with the wide one, so after training they hold their
trained weights and running statistics and can be evaluated, probed or monitored as usual.

Only trunks made of ``Linear``, ``BatchNorm1d`` and elementwise layers (in ``Net``, ``Sequential``,
:class:`~skipflow.orderings.OrderedBlock` and its gate) can be widened; anything else (shortcut dropout,
which draws its own random masks, a LayerNorm, which would mix the seeds, a convolution) makes
:func:`widen` raise ``ValueError``, and :func:`skipflow.orderings.train_seeds` then trains one seed at a
time.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from skipflow import optim
from skipflow.data import Split, batches
from skipflow.models import Net
from skipflow.runtime import seed_everything
from skipflow.train import History, _record_eval, check_training_args

__all__ = ["can_widen", "train_side_by_side", "widen"]

_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.Identity)


def _container_types() -> tuple[type, ...]:
    from skipflow.orderings import OrderedBlock, _Gate

    return (Net, nn.Sequential, nn.ModuleList, OrderedBlock, _Gate)


def _why_not(net: nn.Module) -> str | None:
    """None if the trunk (stem and blocks) of ``net`` can be widened, else the reason."""
    from skipflow.orderings import OrderedBlock

    if not isinstance(net, Net):
        return f"only skipflow Nets can be widened, got {type(net).__name__}"
    containers = _container_types()
    for name, m in _trunk_modules(net):
        if isinstance(m, OrderedBlock) and m.shortcut_kind == "dropout":
            return f"{name}: dropout on the shortcut draws its own random masks"
        if isinstance(m, (nn.Linear, *_ELEMENTWISE)) or type(m) is nn.BatchNorm1d:
            continue
        if isinstance(m, containers):
            continue
        return f"{name}: {type(m).__name__} cannot be widened"
    return None


def _trunk_modules(net: Net) -> list[tuple[str, nn.Module]]:
    """(name, module) for the stem, the blocks and everything inside them."""
    return [*net.stem.named_modules(prefix="stem"), *net.blocks.named_modules(prefix="blocks")]


def can_widen(nets: Sequence[nn.Module]) -> bool:
    """True if :func:`widen` accepts ``nets``: skipflow Nets whose trunks (stem and blocks) have one
    architecture made of Linear, BatchNorm1d and elementwise layers (no shortcut dropout). Their
    ``final`` and ``head`` may differ: each network keeps its own."""
    nets = list(nets)
    if not nets or any(_why_not(n) is not None for n in nets):
        return False
    signatures = [_signature(n) for n in nets]
    return all(s == signatures[0] for s in signatures[1:])


def _signature(net: Net) -> list[tuple]:
    """What must agree for two trunks to compute the same function of their own weights: each module's
    name, type and settings (``extra_repr``, and a block's ordering, shortcut and scales), and the shapes
    of the parameters and buffers."""
    rows: list[tuple] = []
    for name, m in _trunk_modules(net):
        settings = tuple(
            getattr(m, a, None) for a in ("ordering", "shortcut_kind", "shortcut_scale", "branch_scale")
        )
        own = {**m._parameters, **m._buffers}  # this module's own tensors, not its children's
        tensors = tuple((k, None if v is None else tuple(v.shape)) for k, v in own.items())
        rows.append((name, type(m), m.extra_repr(), settings, tensors))
    return rows


class _PerNet(nn.Module):
    """Each network's own ``final`` (or ``head``) applied to its slice of the wide features."""

    def __init__(self, parts: Sequence[nn.Module]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        chunks = h.chunk(len(self.parts), dim=1)
        return torch.cat([part(c) for part, c in zip(self.parts, chunks, strict=True)], dim=1)


def _blocks(n_rows: int, n_cols: int, count: int) -> list[tuple[slice, slice]]:
    return [(slice(s * n_rows, (s + 1) * n_rows), slice(s * n_cols, (s + 1) * n_cols)) for s in range(count)]


def widen(nets: Sequence[Net]) -> tuple[Net, list[torch.Tensor]]:
    """One network computing ``nets`` side by side; returns it and the block-diagonal masks.

    The wide network's input is the S inputs concatenated along the features (``torch.cat(xs, 1)``) and
    its output the S outputs concatenated the same way. Its trunk (stem and blocks) is widened: after the
    call, every trunk parameter and buffer of each original network is a *view* into the wide network's,
    so updating the wide one updates them. Its ``final`` and ``head`` apply each network's own modules to
    that network's slice of the features, so networks that differ only there (chapter 4's control, with
    a BN before the head) train side by side too. ``masks`` holds, for each block-diagonal weight in
    ``wide.parameters()`` order, a 0/1 tensor (None for the other parameters): multiply the gradient by
    it to keep the seeds apart.
    """
    nets = list(nets)
    if not can_widen(nets):
        reasons = [r for r in (_why_not(n) for n in nets) if r]
        raise ValueError(
            "These networks cannot be trained side by side: "
            + (reasons[0] if reasons else "they do not all have the same architecture")
            + "."
        )
    count = len(nets)
    wide = _skeleton(nets[0])
    wide.final, wide.head = _PerNet([n.final for n in nets]), _PerNet([n.head for n in nets])
    masks: dict[int, torch.Tensor] = {}
    with torch.no_grad():
        for name, module in _trunk_modules(wide):
            parts = [n.get_submodule(name) for n in nets]
            if isinstance(module, nn.Linear):
                out_f, in_f = module.out_features, module.in_features
                weight = torch.block_diag(*[p.weight for p in parts])
                module.weight = nn.Parameter(weight)
                mask = torch.block_diag(*[torch.ones_like(p.weight) for p in parts])
                masks[id(module.weight)] = mask
                if module.bias is not None:
                    module.bias = nn.Parameter(torch.cat([p.bias for p in parts]))
                module.in_features, module.out_features = in_f * count, out_f * count
                for p, (rows, cols) in zip(parts, _blocks(out_f, in_f, count), strict=True):
                    p.weight.data = module.weight.data[rows, cols]
                    if p.bias is not None:
                        p.bias.data = module.bias.data[rows]
            elif isinstance(module, nn.BatchNorm1d):
                c = module.num_features
                module.num_features = c * count
                for attr in ("weight", "bias"):
                    if getattr(module, attr) is not None:
                        setattr(module, attr, nn.Parameter(torch.cat([getattr(p, attr) for p in parts])))
                for attr in ("running_mean", "running_var"):
                    if getattr(module, attr) is not None:
                        setattr(module, attr, torch.cat([getattr(p, attr) for p in parts]))
                for s, p in enumerate(parts):
                    rows = slice(s * c, (s + 1) * c)
                    for attr in ("weight", "bias"):
                        if getattr(p, attr) is not None:
                            getattr(p, attr).data = getattr(module, attr).data[rows]
                    for attr in ("running_mean", "running_var"):
                        if getattr(p, attr) is not None:
                            setattr(p, attr, getattr(module, attr)[rows])
    return wide, [masks.get(id(p)) for p in wide.parameters()]


def _skeleton(module: nn.Module) -> nn.Module:
    """A copy of ``module``'s structure whose buffers are copies and whose parameters are still shared.

    :func:`widen` replaces every parameter (and the running statistics) right away, so copying them
    first, as ``copy.deepcopy`` does, would be wasted work (about 0.1 s for a 50-block network).
    """
    clone = copy.copy(module)  # a new object whose attributes are the same objects...
    for name, value in vars(module).items():
        if isinstance(value, dict):  # ...so give it its own parameter, buffer, module and hook tables
            setattr(clone, name, type(value)(value))
    clone._buffers = {k: None if v is None else v.clone() for k, v in module._buffers.items()}
    clone._modules = {k: None if m is None else _skeleton(m) for k, m in module._modules.items()}
    return clone


def _tie_grads(wide: Net, nets: Sequence[Net]) -> None:
    """Make each original network's ``.grad`` fields views into the wide network's gradients."""
    for name, module in _trunk_modules(wide):
        if isinstance(module, nn.Linear | nn.BatchNorm1d) and module.weight is not None:
            for s, net in enumerate(nets):
                part = net.get_submodule(name)
                for attr in ("weight", "bias"):
                    mine, theirs = getattr(part, attr), getattr(module, attr)
                    if mine is None or theirs.grad is None:
                        continue
                    if mine.dim() == 2:
                        rows, cols = _blocks(mine.shape[0], mine.shape[1], len(nets))[s]
                        mine.grad = theirs.grad[rows, cols]
                    else:
                        mine.grad = theirs.grad[s * mine.shape[0] : (s + 1) * mine.shape[0]]


def train_side_by_side(
    nets: Sequence[Net],
    data: Split,
    seeds: Sequence[int],
    steps: int = 300,
    lr: float = 0.02,
    batch_size: int = 128,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    optimizer: str = "sgd",
    eval_every: int | None = None,
    on_step: Callable[[int, nn.Module], None] | Mapping[int, Callable[[int, nn.Module], None]] | None = None,
    progress: bool | None = None,
    desc: str = "training",
    final_eval: bool = True,
) -> list[History] | None:
    """What ``[train(net, data, seed=s, ...) for net, s in zip(nets, seeds)]`` computes, in one pass.

    Seed ``seeds[i]`` fixes the minibatch order of ``nets[i]``, as in :func:`skipflow.train.train`.
    ``on_step(step, nets[0])`` is called after each backward pass with ``nets[0]``'s gradients in place;
    pass ``{i: on_step_i, ...}`` instead to call ``on_step_i(step, nets[i])`` for several networks.
    Returns None if any seed's loss becomes NaN or infinite (where ``train`` would stop that seed alone),
    leaving the networks half trained: the caller then builds fresh ones and trains one seed at a time.
    Classification only.
    """
    del progress, desc  # one pass for all seeds: no per-seed progress bar
    nets, seeds = list(nets), list(seeds)
    if len(nets) != len(seeds):
        raise ValueError(f"Got {len(nets)} networks but {len(seeds)} seeds; pass one seed per network.")
    check_training_args(steps, lr, batch_size, momentum, weight_decay, optimizer)
    if data.n_classes is None:
        raise ValueError("train_side_by_side handles classification data only.")
    callbacks = dict(on_step) if isinstance(on_step, Mapping) else {} if on_step is None else {0: on_step}
    if any(not isinstance(i, int) or not 0 <= i < len(nets) for i in callbacks):
        raise ValueError(
            f"`on_step` keys must be network indices 0-{len(nets) - 1}, got {sorted(callbacks)}."
        )
    wide, masks = widen(nets)
    device = next(wide.parameters()).device
    data = data.to(device)
    params = list(wide.parameters())
    if optimizer == "sgd":
        opt: optim.SGD | optim.Adam = optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        opt = optim.Adam(params, lr=lr, weight_decay=weight_decay)
    masked = [(p, m) for p, m in zip(params, masks, strict=True) if m is not None]
    count = len(nets)
    histories = [History() for _ in nets]
    streams = [batches(data.x_train, data.y_train, batch_size, seed_everything(s)) for s in seeds]
    wide.train()
    for net in nets:
        net.train()
    start = time.perf_counter()
    for step in range(steps):
        pairs = [next(stream) for stream in streams]
        xb = torch.cat([x for x, _ in pairs], dim=1)
        yb = torch.stack([y for _, y in pairs], dim=1)
        out = wide(xb).view(batch_size, count, -1)
        losses = F.cross_entropy(out.permute(0, 2, 1), yb, reduction="none").mean(0)
        opt.zero_grad(set_to_none=False)
        losses.sum().backward()
        values = losses.detach().tolist()
        if not all(math.isfinite(v) for v in values):
            return None
        torch._foreach_mul_([p.grad for p, _ in masked], [m for _, m in masked])
        if step == 0:
            _tie_grads(wide, nets)
        for history, value in zip(histories, values, strict=True):
            history.loss.append(value)
        for i, callback in callbacks.items():
            callback(step, nets[i])
        opt.step()
        if eval_every is not None and (step + 1) % eval_every == 0 and step + 1 < steps:
            for net, history in zip(nets, histories, strict=True):
                _record_eval(net, data, history, step + 1)
    for module_w, name in ((m, n) for n, m in _trunk_modules(wide) if isinstance(m, nn.BatchNorm1d)):
        for net in nets:
            net.get_submodule(name).num_batches_tracked.copy_(module_w.num_batches_tracked)
    elapsed = (time.perf_counter() - start) / count
    for net, history in zip(nets, histories, strict=True):
        if final_eval:
            _record_eval(net, data, history, steps)
        history.seconds = elapsed
    return histories
