"""In-place operations next to a residual sum: which ones are safe, which raise, which corrupt silently.

Autograd saves some tensors during the forward pass (a ReLU keeps its output, tanh its output, a Linear
layer its input) and checks at backward time that none of them was modified in place since. So:

- modifying a tensor in place is safe when no backward function saved it (the bottleneck code does this);
- it raises ``RuntimeError: one of the variables needed for gradient computation has been modified by an
  inplace operation`` when one did;
- and it silently changes the forward result when the tensor is also read later, e.g. by the shortcut.
"""

from __future__ import annotations

import torch
from torch import nn

from skipflow._validate import check_int


class InplacePreActBlock(nn.Module):
    """A buggy pre-activation block: ``out = relu_(x)`` in place, then ``x + Linear(out)``.

    The in-place ReLU overwrites ``x`` itself, so the shortcut adds relu(x) instead of x. If the layer that
    produced ``x`` saved it for its backward (tanh, sigmoid, ReLU do), backward raises; if not (a Linear
    layer saves its input, not its output), the result is silently wrong.
    """

    def __init__(self, width: int, inplace: bool = True) -> None:
        super().__init__()
        check_int("width", width, minimum=1)
        self.relu = nn.ReLU(inplace=inplace)
        self.fc = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(x)
        return x + self.fc(out)


class AddIntoReluBlock(nn.Module):
    """A buggy block: ``out = relu(fc(x))`` then ``out += x`` in place.

    ReLU's backward needs its own output, which the ``+=`` overwrites, so backward raises.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        check_int("width", width, minimum=1)
        self.fc = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.fc(x))
        out += x
        return out
