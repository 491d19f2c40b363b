"""A small, explicit training loop that returns a :class:`History`.

It is deliberately plain (no callbacks framework, no trainer class) so a reader can follow every line:
sample a minibatch, forward, loss, backward, step; every ``eval_every`` steps measure accuracy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from skipflow import optim
from skipflow._validate import check_choice, check_float, check_int
from skipflow.data import Split, batches
from skipflow.probes import default_loss
from skipflow.runtime import seed_everything, show_progress

OPTIMIZERS = ("sgd", "adam")


@dataclass
class History:
    """What a training run measured.

    ``loss`` holds the minibatch loss of every step. ``eval_step``, ``train_acc``, ``test_acc`` and
    ``test_loss`` are filled every ``eval_every`` steps and at the end. ``diverged`` is True if the loss
    became NaN or infinite (training stops there).
    """

    loss: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    diverged: bool = False
    seconds: float = 0.0

    @property
    def final_loss(self) -> float:
        """Mean minibatch loss over the last 10 steps (less noisy than the very last step)."""
        tail = self.loss[-10:]
        return sum(tail) / len(tail) if tail else math.nan

    def steps_to(self, target: float) -> int | None:
        """The first step whose minibatch loss is at most ``target``, or None if it never gets there."""
        for i, value in enumerate(self.loss):
            if value <= target:
                return i
        return None


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024
) -> tuple[float, float]:
    """Mean loss and accuracy (NaN for regression) of ``model`` on ``(x, y)``, in eval mode.

    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        out = model(x[start : start + batch_size])
        target = y[start : start + batch_size]
        total_loss += float(default_loss(out, target)) * len(target)
        if target.dtype == torch.int64:
            correct += int((out.argmax(1) == target).sum())
    model.train(was_training)
    accuracy = correct / len(x) if y.dtype == torch.int64 else math.nan
    return total_loss / len(x), accuracy


def train(
    model: nn.Module,
    data: Split,
    steps: int = 300,
    lr: float = 0.02,
    batch_size: int = 128,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    optimizer: str = "sgd",
    seed: int = 0,
    eval_every: int | None = None,
    grad_clip: float | None = None,
    on_step: Callable[[int, nn.Module], None] | None = None,
    progress: bool | None = None,
    desc: str = "training",
    final_eval: bool = True,
) -> History:
    """Train ``model`` on ``data`` for ``steps`` minibatch steps and return its :class:`History`.

    Args:
        model: any module; it is moved to nothing, so put it on the device you want first (the data
            follows the model's device).
        data: a :class:`skipflow.data.Split`; classification if ``data.n_classes`` is set, else regression.
        steps, lr, batch_size, momentum, weight_decay: the usual; ``momentum`` applies to SGD only.
        optimizer: ``"sgd"`` or ``"adam"``.
        seed: seeds the minibatch order (the model's init is seeded by whoever built it).
        eval_every: measure train/test accuracy every so many steps (default: only at the end).
        grad_clip: clip the global gradient norm to this value, if given.
        on_step: called as ``on_step(step, model)`` after each backward pass, before the update (for
            monitors such as :func:`skipflow.probes.grad_to_weight_ratios`).
        progress: draw a tqdm progress bar (default: :func:`skipflow.runtime.show_progress`).
        final_eval: measure train/test accuracy at the end (False skips it, e.g. when only the loss
            curve is used; ``eval_step``, ``train_acc``, ``test_acc`` and ``test_loss`` then stay empty).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
    if not isinstance(data, Split):
        raise TypeError(f"`data` must be a skipflow.data.Split, got {type(data).__name__}.")
    check_training_args(steps, lr, batch_size, momentum, weight_decay, optimizer)
    if eval_every is not None:
        check_int("eval_every", eval_every, minimum=1)
    if grad_clip is not None:
        check_float("grad_clip", grad_clip, minimum=0.0, strict_min=True)

    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    data = data.to(device)
    if optimizer == "sgd":
        opt: optim.SGD | optim.Adam = optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        opt = optim.Adam(params, lr=lr, weight_decay=weight_decay)

    history = History()
    stream = batches(data.x_train, data.y_train, batch_size, seed_everything(seed))
    model.train()
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, disable=not (show_progress() if progress is None else progress))
    for step in bar:
        xb, yb = next(stream)
        loss = default_loss(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        value = float(loss.detach())
        history.loss.append(value)
        if not math.isfinite(value):
            history.diverged = True
            break
        if on_step is not None:
            on_step(step, model)
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        if eval_every is not None and (step + 1) % eval_every == 0 and step + 1 < steps:
            _record_eval(model, data, history, step + 1)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{value:.3f}")
    bar.close()
    if final_eval and not history.diverged:
        _record_eval(model, data, history, len(history.loss))
    history.seconds = time.perf_counter() - start
    return history


def check_training_args(
    steps: int, lr: float, batch_size: int, momentum: float, weight_decay: float, optimizer: str
) -> None:
    """Raise ``ValueError``/``TypeError`` naming the first bad training argument (shared by the loops)."""
    check_int("steps", steps, minimum=1)
    check_float("lr", lr, minimum=0.0, strict_min=True)
    check_int("batch_size", batch_size, minimum=1)
    check_float("momentum", momentum, minimum=0.0, maximum=1.0)
    check_float("weight_decay", weight_decay, minimum=0.0)
    check_choice("optimizer", optimizer, OPTIMIZERS)


def _record_eval(model: nn.Module, data: Split, history: History, step: int) -> None:
    _, train_acc = evaluate(model, data.x_train, data.y_train)
    test_loss, test_acc = evaluate(model, data.x_test, data.y_test)
    history.eval_step.append(step)
    history.train_acc.append(train_acc)
    history.test_acc.append(test_acc)
    history.test_loss.append(test_loss)
