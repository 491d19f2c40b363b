"""A residual block built by hand: Linear and ReLU layers with explicit forward and backward passes.

This is what autograd does for you. Each layer's ``forward`` keeps what its backward needs; ``backward``
receives ∂𝓛/∂(output) and returns ∂𝓛/∂(input), storing the parameter gradients on the way. Everything is
float64 so that the comparison with autograd can be held to ``gradcheck``'s tolerances.
"""

from __future__ import annotations

import math

import torch

from skipflow import runtime
from skipflow._validate import check_int

DTYPE = torch.float64


def _check_input(name: str, x: object, features: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}.")
    if x.dim() != 2 or x.shape[1] != features:
        raise ValueError(f"`{name}` must have shape (batch, {features}), got {tuple(x.shape)}.")
    return x.to(DTYPE)


class Linear:
    """y = x Wᵀ + b for a batch x of shape (batch, in_features); PyTorch's default uniform init."""

    def __init__(self, in_features: int, out_features: int, generator: torch.Generator | None = None):
        check_int("in_features", in_features, minimum=1)
        check_int("out_features", out_features, minimum=1)
        bound = 1.0 / math.sqrt(in_features)
        shape = (out_features, in_features)
        self.weight = (torch.rand(shape, generator=generator, dtype=DTYPE) * 2 - 1) * bound
        self.bias = (torch.rand(out_features, generator=generator, dtype=DTYPE) * 2 - 1) * bound
        self.grad_weight: torch.Tensor | None = None
        self.grad_bias: torch.Tensor | None = None
        self._x: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._x = _check_input("x", x, self.weight.shape[1])
        return self._x @ self.weight.T + self.bias

    def backward(self, grad_out: torch.Tensor) -> torch.Tensor:
        """Given ∂𝓛/∂y, store ∂𝓛/∂W = gradᵀ x and ∂𝓛/∂b = Σ_batch grad; return ∂𝓛/∂x = grad W."""
        if self._x is None:
            raise RuntimeError("Call forward before backward: backward needs the saved input.")
        self.grad_weight = grad_out.T @ self._x
        self.grad_bias = grad_out.sum(0)
        return grad_out @ self.weight


class ReLU:
    """y = max(x, 0); the backward pass multiplies the gradient by the mask 1[x > 0]."""

    def __init__(self) -> None:
        self._mask: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._mask = x > 0
        return x * self._mask

    def backward(self, grad_out: torch.Tensor) -> torch.Tensor:
        if self._mask is None:
            raise RuntimeError("Call forward before backward: backward needs the saved mask.")
        return grad_out * self._mask


class ResidualBlock:
    """h = x + F(x) with F = Linear → ReLU → Linear; with ``post_activation=True``, h = relu(x + F(x)).

    The backward pass is the chain rule written out: the gradient reaching the sum goes down *both* the
    shortcut (unchanged) and the branch, and the two are added at the input.
    """

    def __init__(self, width: int, post_activation: bool = False, seed: int = 0):
        check_int("width", width, minimum=1)
        check_int("seed", seed, minimum=0)
        generator = runtime.generator(seed)
        self.width = width
        self.fc1 = Linear(width, width, generator)
        self.relu = ReLU()
        self.fc2 = Linear(width, width, generator)
        self.post_activation = bool(post_activation)
        self.out_relu = ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input("x", x, self.width)
        branch = self.fc2.forward(self.relu.forward(self.fc1.forward(x)))
        out = x + branch  # the sum: shortcut + branch
        return self.out_relu.forward(out) if self.post_activation else out

    def backward(self, grad_out: torch.Tensor) -> torch.Tensor:
        if self.post_activation:
            grad_out = self.out_relu.backward(grad_out)  # the mask hits shortcut and branch alike
        grad_branch = self.fc1.backward(self.relu.backward(self.fc2.backward(grad_out)))
        return grad_out + grad_branch  # identity path + branch path

    def parameters(self) -> dict[str, torch.Tensor]:
        """The four parameter tensors, named like the matching ``torch.nn`` module's state dict."""
        return {
            "fc1.weight": self.fc1.weight,
            "fc1.bias": self.fc1.bias,
            "fc2.weight": self.fc2.weight,
            "fc2.bias": self.fc2.bias,
        }

    def gradients(self) -> dict[str, torch.Tensor]:
        """The parameter gradients from the last backward pass, with the names of :meth:`parameters`."""
        if self.fc1.grad_weight is None:
            raise RuntimeError("Call backward first: there are no gradients yet.")
        return {
            "fc1.weight": self.fc1.grad_weight,
            "fc1.bias": self.fc1.grad_bias,
            "fc2.weight": self.fc2.grad_weight,
            "fc2.bias": self.fc2.grad_bias,
        }


def autograd_block(
    x: torch.Tensor, params: dict[str, torch.Tensor], post_activation: bool = False
) -> torch.Tensor:
    """The same block in ordinary PyTorch ops, so that autograd can differentiate it."""
    hidden = torch.relu(x @ params["fc1.weight"].T + params["fc1.bias"])
    out = x + hidden @ params["fc2.weight"].T + params["fc2.bias"]
    return torch.relu(out) if post_activation else out


def compare_with_autograd(block: ResidualBlock, x: torch.Tensor, grad_out: torch.Tensor) -> dict[str, float]:
    """Run the hand-written backward and autograd on the same input; return the largest absolute gaps.

    Keys: ``"output"``, ``"input"`` and one per parameter. Values near 1e-15 mean the two agree to float64
    round-off.
    """
    if not isinstance(block, ResidualBlock):
        raise TypeError("`block` must be a skipflow.handmade.ResidualBlock.")
    x = _check_input("x", x, block.width)
    out = block.forward(x)
    if not isinstance(grad_out, torch.Tensor) or grad_out.shape != out.shape:
        raise ValueError(f"`grad_out` must be a tensor of shape {tuple(out.shape)} (the output's shape).")
    grad_x = block.backward(grad_out.to(DTYPE))
    x_auto = x.detach().clone().requires_grad_(True)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in block.parameters().items()}
    out_auto = autograd_block(x_auto, params, block.post_activation)
    out_auto.backward(grad_out.to(DTYPE))
    gaps = {"output": (out - out_auto).abs().max().item(), "input": (grad_x - x_auto.grad).abs().max().item()}
    for name, grad in block.gradients().items():
        gaps[name] = (grad - params[name].grad).abs().max().item()
    return gaps


class HandmadeFunction(torch.autograd.Function):
    """Wraps :class:`ResidualBlock` as an autograd function whose backward is the hand-written one.

    ``torch.autograd.gradcheck(HandmadeFunction.apply, (x, w1, b1, w2, b2, post))`` then compares our
    backward with finite differences of our forward, for the input and all four parameters.
    """

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, post_activation=False):
        block = ResidualBlock(x.shape[1], post_activation)
        block.fc1.weight, block.fc1.bias, block.fc2.weight, block.fc2.bias = w1, b1, w2, b2
        ctx.block = block
        return block.forward(x)

    @staticmethod
    def backward(ctx, grad_out):
        block = ctx.block
        grad_x = block.backward(grad_out)
        g = block.gradients()
        return grad_x, g["fc1.weight"], g["fc1.bias"], g["fc2.weight"], g["fc2.bias"], None
