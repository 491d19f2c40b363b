"""SGD with momentum and Adam, written out: the two optimizers the course trains with.

They compute what ``torch.optim.SGD`` (dampening 0, no Nesterov) and ``torch.optim.Adam`` (no AMSGrad)
compute, update for update (``tests/test_optim.py`` compares them), for two reasons:

- a reader sees the whole update rule in a dozen lines;
- creating the first ``torch.optim`` optimizer in a process imports PyTorch's compiler stack
  (``torch._dynamo``), about 2 s of CPU time that every chapter run would pay for nothing.

Both keep the interface the course's training loops use: ``zero_grad()``, ``step()``, ``param_groups`` (one
group, whose ``"lr"`` a warmup schedule may change between steps) and ``state`` (per-parameter buffers).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from skipflow._validate import check_float

__all__ = ["SGD", "Adam"]


class _Optimizer:
    """What SGD and Adam share: the parameters, one parameter group, per-parameter state."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, weight_decay: float) -> None:
        params = list(params)
        if not params or not all(isinstance(p, torch.Tensor) for p in params):
            raise ValueError("`params` must be a non-empty iterable of tensors, e.g. model.parameters().")
        check_float("lr", lr, minimum=0.0)
        check_float("weight_decay", weight_decay, minimum=0.0)
        self.param_groups: list[dict[str, Any]] = [{"params": params, "lr": lr}]
        self.weight_decay = weight_decay
        self.state: dict[torch.Tensor, dict[str, Any]] = {}

    @property
    def params(self) -> list[torch.Tensor]:
        return self.param_groups[0]["params"]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: set them to ``None`` (the default, as in ``torch.optim``) or to zeros."""
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def _gradient(self, p: torch.Tensor) -> torch.Tensor:
        # L2 weight decay adds weight_decay · θ to the gradient (not AdamW's decoupled decay).
        return p.grad if self.weight_decay == 0 else p.grad.add(p, alpha=self.weight_decay)


class SGD(_Optimizer):
    """θ ← θ − lr · b, with the momentum buffer b ← momentum · b + g (b = g at the first step)."""

    def __init__(
        self, params: Iterable[torch.Tensor], lr: float, momentum: float = 0.0, weight_decay: float = 0.0
    ) -> None:
        super().__init__(params, lr, weight_decay)
        self.momentum = check_float("momentum", momentum, minimum=0.0, maximum=1.0)

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient.

        The arithmetic is the per-tensor rule in the class docstring, done for all tensors at once with
        PyTorch's ``_foreach`` operations (one call per operation instead of one per tensor; the same
        numbers, bit for bit).
        """
        lr = self.param_groups[0]["lr"]
        params = [p for p in self.params if p.grad is not None]
        if not params:
            return
        grads = [p.grad for p in params]
        if self.weight_decay:
            grads = torch._foreach_add(grads, params, alpha=self.weight_decay)  # g + weight_decay · θ
        if self.momentum:
            states = [self.state.setdefault(p, {}) for p in params]
            old = [s["momentum_buffer"] for s in states if "momentum_buffer" in s]
            old_grads = [g for g, s in zip(grads, states, strict=True) if "momentum_buffer" in s]
            if old:
                torch._foreach_mul_(old, self.momentum)  # b ← momentum · b + g
                torch._foreach_add_(old, old_grads)
            for g, s in zip(grads, states, strict=True):
                if "momentum_buffer" not in s:
                    s["momentum_buffer"] = g.clone()  # the first step: b = g
            grads = [s["momentum_buffer"] for s in states]
        torch._foreach_add_(params, grads, alpha=-lr)  # θ ← θ − lr · b


class Adam(_Optimizer):
    """Adam (Kingma & Ba, 2015): bias-corrected running means of g and g², θ ← θ − lr · m̂ / (√v̂ + eps)."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr, weight_decay)
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise TypeError(f"`betas` must be a pair such as (0.9, 0.999), got {betas!r}.")
        self.beta1 = check_float("betas[0]", betas[0], minimum=0.0, maximum=1.0)
        self.beta2 = check_float("betas[1]", betas[1], minimum=0.0, maximum=1.0)
        self.eps = check_float("eps", eps, minimum=0.0)

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        lr = self.param_groups[0]["lr"]
        for p in self.params:
            if p.grad is None:
                continue
            g = self._gradient(p)
            state = self.state.setdefault(p, {"step": 0})
            if state["step"] == 0:
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
            m.lerp_(g, 1 - self.beta1)  # m ← β₁ m + (1 − β₁) g
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)  # v ← β₂ v + (1 − β₂) g²
            denominator = (v.sqrt() / (1 - self.beta2**t) ** 0.5).add_(self.eps)  # √v̂ + eps
            p.addcdiv_(m, denominator, value=-lr / (1 - self.beta1**t))  # m̂ = m / (1 − β₁ᵗ)
