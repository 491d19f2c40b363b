"""Train several seeds of one MLP architecture side by side, in one batched pass (chapter 5's fast path).

:func:`train_seeds` does what calling :func:`skipflow.train.train` once per seed does, for SGD with
momentum, but runs the seeds as one network whose every parameter has a leading "seed" axis: a Linear
becomes a batched matrix product, a BatchNorm normalizes each seed's channels with that seed's own batch
statistics, and the loss is the SUM of the per-seed losses, so each seed gets exactly its own gradient.
SGD is elementwise, so one optimizer over the stacked parameters is the separate optimizers. Each seed
draws its own minibatches (and its own stochastic-depth coin flips) from the generators its own run would
use. Afterwards every trained seed is copied back into its own model, and the histories are what the
separate runs return, up to float rounding (batched and unbatched matrix products may round differently).

Supported: :class:`skipflow.models.Net` MLPs built from ``Linear``, ``BatchNorm1d``, activations,
``Identity``, ``Sequential``, :class:`~skipflow.blocks.ResidualBlock`, :class:`~skipflow.blocks.PlainLayer`
and :class:`~skipflow.stochastic_depth.StochasticDepthBlock`.
"""

from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from skipflow import optim
from skipflow._validate import check_float, check_int
from skipflow.blocks import ResidualBlock
from skipflow.data import Split, batches
from skipflow.models import Net
from skipflow.runtime import generator, seed_everything
from skipflow.stochastic_depth import StochasticDepthBlock
from skipflow.train import History, _record_eval

__all__ = ["train_seeds"]

_ELEMENTWISE = (nn.ReLU, nn.Identity, nn.Tanh, nn.GELU, nn.Sigmoid, nn.LeakyReLU)


class _StackedLinear(nn.Module):
    """S Linear layers: ``h`` of shape (S, batch, in) → (S, batch, out)."""

    def __init__(self, layers: list[nn.Linear]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]).clone())
        has_bias = layers[0].bias is not None
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in layers]).clone()) if has_bias else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return torch.bmm(h, self.weight.transpose(1, 2))
        return torch.baddbmm(self.bias.unsqueeze(1), h, self.weight.transpose(1, 2))

    def write_back(self, layers: list[nn.Linear], seeds: list[int]) -> None:
        for i in seeds:
            layers[i].weight.copy_(self.weight[i])
            if self.bias is not None:
                layers[i].bias.copy_(self.bias[i])


class _StackedBatchNorm(nn.Module):
    """S BatchNorm1d layers on (S, batch, C): one BatchNorm over S·C channels, so each seed's own batch."""

    def __init__(self, layers: list[nn.BatchNorm1d]) -> None:
        super().__init__()
        first = layers[0]
        if not (first.affine and first.track_running_stats) or first.momentum is None:
            raise NotImplementedError("only affine BatchNorm1d with running stats and a momentum is stacked")
        self.eps, self.momentum = first.eps, first.momentum
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]).clone())
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in layers]).clone())
        self.register_buffer("running_mean", torch.stack([m.running_mean for m in layers]).clone())
        self.register_buffer("running_var", torch.stack([m.running_var for m in layers]).clone())
        self.register_buffer("tracked", torch.stack([m.num_batches_tracked for m in layers]).clone())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        s, b, c = h.shape
        x = h.transpose(0, 1).reshape(b, s * c)
        if self.training:
            self.tracked += 1
        y = F.batch_norm(
            x,
            self.running_mean.view(-1),
            self.running_var.view(-1),
            self.weight.view(-1),
            self.bias.view(-1),
            self.training,
            self.momentum,
            self.eps,
        )
        return y.reshape(b, s, c).transpose(0, 1)

    def write_back(self, layers: list[nn.BatchNorm1d], seeds: list[int]) -> None:
        for i in seeds:
            layers[i].weight.copy_(self.weight[i])
            layers[i].bias.copy_(self.bias[i])
            layers[i].running_mean.copy_(self.running_mean[i])
            layers[i].running_var.copy_(self.running_var[i])
            layers[i].num_batches_tracked.copy_(self.tracked[i])


class _StackedStochasticDepth(nn.Module):
    """S stochastic-depth blocks; seed i flips its coins with its own generator, as its own run would."""

    def __init__(self, block: nn.Module, survival: float, run: _Run) -> None:
        super().__init__()
        self.block, self.survival, self.run = block, survival, run

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b = self.block
        s = b.shortcut(h)
        if not self.training:
            return b.after(s + self.survival * (b.alpha * b.branch(s)))
        keep = [torch.rand((), generator=g).item() < self.survival for g in self.run.generators]
        if not any(keep):
            return b.after(s)
        if all(keep):
            return b.after(s + b.alpha * b.branch(s))
        dropped = [i for i, k in enumerate(keep) if not k]
        norms = [m for m in b.branch.modules() if isinstance(m, _StackedBatchNorm)]
        saved = [(m, m.running_mean[dropped].clone(), m.running_var[dropped].clone()) for m in norms]
        mask = torch.tensor(keep, dtype=h.dtype, device=h.device).view(-1, 1, 1)
        out = b.after(s + mask * (b.alpha * b.branch(s)))
        for m, mean, var in saved:  # a dropped branch does not run: its statistics stay as they were
            m.tracked[dropped] -= 1
            self.run.restore.append((m, dropped, mean, var))  # after the backward pass, which needs them
        self.run.frozen += [(p, dropped) for p in b.branch.parameters()]
        return out


class _Run:
    """State shared by the stacked modules during one step: generators and parameters to leave alone."""

    def __init__(self, generators: list[torch.Generator]) -> None:
        self.generators = generators
        self.frozen: list[tuple[nn.Parameter, list[int]]] = []
        self.fixed: list[tuple[nn.Parameter, list[int]]] = []  # frozen at every step
        self.restore: list[tuple[_StackedBatchNorm, list[int], torch.Tensor, torch.Tensor]] = []


def _stack(nets: list[nn.Module], run: _Run) -> tuple[nn.Module, list[tuple[nn.Module, list[nn.Module]]]]:
    """A copy of ``nets[0]`` whose layers hold all seeds; and (stacked module, per-seed modules) pairs.

    The nets may differ in their initial values and in whether a block's α is learnable (ReZero) or fixed.
    """
    pairs: list[tuple[nn.Module, list[nn.Module]]] = []

    def convert(modules: list[nn.Module]) -> nn.Module:
        first = modules[0]
        if any(type(m) is not type(first) for m in modules):
            raise ValueError("the networks must have the same architecture")
        if isinstance(first, nn.Linear):
            new: nn.Module = _StackedLinear(modules)
            pairs.append((new, modules))
            return new
        if isinstance(first, nn.BatchNorm1d):
            new = _StackedBatchNorm(modules)
            pairs.append((new, modules))
            return new
        if isinstance(first, _ELEMENTWISE):
            return copy.deepcopy(first)
        if isinstance(first, StochasticDepthBlock):
            if any(m.survival != first.survival for m in modules):
                raise ValueError("the seeds must use the same survival probabilities")
            return _StackedStochasticDepth(convert([m.block for m in modules]), first.survival, run)
        if isinstance(first, ResidualBlock):
            if not isinstance(first.shortcut, nn.Identity):
                raise NotImplementedError("only identity shortcuts are stacked")
            new = copy.copy(first)  # same class and forward; its children are replaced below
            new._modules = {k: convert([getattr(m, k) for m in modules]) for k in first._modules}
            new._parameters, new._buffers = {}, {}
            alpha = torch.stack([m.alpha.detach() for m in modules]).view(-1, 1, 1).clone()
            learnable = [isinstance(m.alpha, nn.Parameter) for m in modules]
            if any(learnable):  # a fixed α (a buffer) among learnable ones is stacked but never updated
                new.alpha = nn.Parameter(alpha)
                fixed = [i for i, k in enumerate(learnable) if not k]
                if fixed:
                    run.fixed.append((new.alpha, fixed))
                pairs.append((new, modules))
            else:
                new.register_buffer("alpha", alpha)
            return new
        if isinstance(first, nn.Sequential | nn.ModuleList | Net) or type(first).__name__ == "PlainLayer":
            if first._parameters or any(v is not None for v in first._buffers.values()):
                raise NotImplementedError(f"{type(first).__name__} holds its own tensors")
            new = copy.copy(first)
            new._modules = {k: convert([getattr(m, k) for m in modules]) for k in first._modules}
            new._parameters, new._buffers = {}, {}
            return new
        raise NotImplementedError(f"cannot stack a {type(first).__name__}")

    return convert(nets), pairs


@torch.no_grad()
def _write_back(pairs: list[tuple[nn.Module, list[nn.Module]]], seeds: list[int]) -> None:
    for stacked, modules in pairs:
        if isinstance(stacked, ResidualBlock):
            for i in seeds:
                modules[i].alpha.copy_(stacked.alpha[i].view(()))
        else:
            stacked.write_back(modules, seeds)


def train_seeds(
    nets: list[nn.Module],
    data: Split,
    seeds: list[int],
    steps: int = 300,
    lr: float = 0.02,
    batch_size: int = 128,
    momentum: float = 0.9,
) -> list[History]:
    """Train ``nets[i]`` as ``train.train(nets[i], data, steps, lr, batch_size, momentum, seed=seeds[i])``
    would (SGD, no weight decay, evaluation at the end only), all seeds in one batched pass.

    The models are trained in place and their histories returned in order. A seed whose loss becomes
    non-finite stops there (``diverged``), exactly as in its own run; the others go on. ``seconds`` of
    each history is the batched run's time divided by the number of seeds.
    """
    if not isinstance(nets, list | tuple) or not nets or not all(isinstance(n, nn.Module) for n in nets):
        raise TypeError("`nets` must be a non-empty list of torch.nn.Module.")
    if not isinstance(data, Split):
        raise TypeError(f"`data` must be a skipflow.data.Split, got {type(data).__name__}.")
    seeds = [check_int("seeds", s) for s in seeds]
    if len(seeds) != len(nets):
        raise ValueError(f"{len(nets)} nets but {len(seeds)} seeds: give one seed per net.")
    check_int("steps", steps, minimum=1)
    check_float("lr", lr, minimum=0.0, strict_min=True)
    check_int("batch_size", batch_size, minimum=1)
    check_float("momentum", momentum, minimum=0.0, maximum=1.0)

    nets = list(nets)
    device = next(nets[0].parameters()).device
    data = data.to(device)
    streams = [batches(data.x_train, data.y_train, batch_size, seed_everything(s)) for s in seeds]
    run = _Run([generator(s) for s in seeds])  # what seed_everything(s) gives the global generator
    model, pairs = _stack(nets, run)
    model.train()
    for net in nets:
        net.train()
    params = list(model.parameters())
    opt = optim.SGD(params, lr=lr, momentum=momentum)
    n = len(nets)
    histories = [History() for _ in nets]
    live = list(range(n))
    start = time.perf_counter()
    for _ in range(steps):
        pairs_xy = [next(stream) for stream in streams]
        xb = torch.stack([x for x, _ in pairs_xy])
        yb = torch.stack([y for _, y in pairs_xy])
        run.frozen, run.restore = [], []
        out = model(xb)
        losses = F.cross_entropy(out.flatten(0, 1), yb.flatten(), reduction="none").view(n, -1).mean(1)
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        values = losses.detach().tolist()
        with torch.no_grad():
            for m, dropped, mean, var in run.restore:
                m.running_mean[dropped] = mean
                m.running_var[dropped] = var
        for i in list(live):
            histories[i].loss.append(values[i])
            if not math.isfinite(values[i]):  # stop this seed here, before its update, as train() does
                histories[i].diverged = True
                live.remove(i)
                _write_back(pairs, [i])
        if not live:
            break
        # Parameters whose branch a seed dropped get no update for that seed (its own run has no gradient
        # for them, so its optimizer skips them, momentum included); nor does a fixed α.
        kept = []
        for p, dropped in run.fixed + run.frozen:
            buf = opt.state.get(p, {}).get("momentum_buffer")
            old_buf = None if buf is None else buf[dropped].clone()
            kept.append((p, dropped, p.detach()[dropped].clone(), old_buf))
        opt.step()
        with torch.no_grad():
            for p, dropped, value, buf in kept:
                p[dropped] = value
                state_buf = opt.state[p]["momentum_buffer"]
                state_buf[dropped] = 0.0 if buf is None else buf
    _write_back(pairs, live)
    seconds = (time.perf_counter() - start) / n
    for i in live:
        _record_eval(nets[i], data, histories[i], len(histories[i].loss))
    for h in histories:
        h.seconds = seconds
    return histories
