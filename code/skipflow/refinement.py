"""Residual blocks as iterative refinement: does each block step the stream down the loss gradient?

Greff et al. (2017) read a residual network as *unrolled iterative estimation*: successive blocks refine
an estimate of the same features instead of computing new ones. Jastrzębski et al. (2018) made it
measurable. To first order, the loss the rest of the network computes from the stream h_l = h_{l-1} + Δ_l,
with Δ_l = α F_l(h_{l-1}) the change block l makes, is

    𝓛(h_l − Δ_l) ≈ 𝓛(h_l) − ⟨g_l, Δ_l⟩,        g_l = ∂𝓛/∂h_l,

so a block whose change points against the gradient (cos(Δ_l, g_l) < 0) lowers the loss, like one step of
gradient descent on the features, and deleting it costs about −⟨g_l, Δ_l⟩. That first-order cost is what
:func:`block_refinement` returns next to the cosines, to be compared with a lesion study.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from skipflow.probes import default_loss


@dataclass
class Refinement:
    """Per block l = 1…L (index l − 1): how its change Δ_l relates to the loss gradient g_l at its output.

    - ``cosine``: the mean over examples of cos(Δ_l, g_l) (per-example vectors);
    - ``first_order_cost``: −⟨g_l, Δ_l⟩ summed over the batch, the first-order increase of the mean loss
      when Δ_l is removed from h_l and the rest of the network is left as it is;
    - ``relative_change``: ‖Δ_l‖ / ‖h_{l-1}‖ over the batch;
    - ``descending_share``: the fraction of examples whose own ⟨g_l, Δ_l⟩ is negative, on which the block's
      change lowers that example's loss to first order. The cosine and this share weigh every example
      equally; ``first_order_cost`` sums inner products, so examples with large gradients dominate it.
    """

    cosine: torch.Tensor
    first_order_cost: torch.Tensor
    relative_change: torch.Tensor
    descending_share: torch.Tensor


def block_refinement(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Refinement:
    """Measure :class:`Refinement` for each residual block of a :class:`skipflow.models.Net` in eval mode.

    Works for pre-activation blocks (nothing after the sum), where h_l − h_{l-1} is exactly α F_l(h_{l-1}).
    The model's train/eval mode is restored afterwards.
    """
    if not isinstance(model, nn.Module) or not isinstance(getattr(model, "blocks", None), nn.ModuleList):
        raise TypeError(f"`model` must be a skipflow.models.Net, got {type(model).__name__}.")
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or len(x) != len(y):
        raise ValueError("`x` and `y` must be tensors with the same number of rows.")
    for i, block in enumerate(model.blocks):
        if not isinstance(getattr(block, "after", None), nn.Identity):
            raise ValueError(
                f"`model.blocks[{i}]` has an activation after the sum; use pre-activation blocks, whose "
                "change to the stream is exactly the branch output."
            )
    was_training = model.training
    model.eval()
    try:
        h = model.stem(x).detach().requires_grad_(True)
        inputs, outputs = [], []
        for block in model.blocks:
            out = block(h)
            inputs.append(h)
            outputs.append(out)
            h = out
        loss = default_loss(model.head(model.final(h)), y)
        grads = torch.autograd.grad(loss, outputs)  # g_l = ∂𝓛/∂h_l, through every block above l
    finally:
        model.train(was_training)
    deltas = [(out - hin).detach() for out, hin in zip(outputs, inputs, strict=True)]
    cosine = torch.stack(
        [
            nn.functional.cosine_similarity(d.flatten(1), g.flatten(1), dim=1).mean()
            for d, g in zip(deltas, grads, strict=True)
        ]
    )
    inner = torch.stack([(g * d).flatten(1).sum(1) for d, g in zip(deltas, grads, strict=True)])
    cost = -inner.sum(1)
    descending = (inner < 0).double().mean(1)
    rel = torch.stack(
        [d.norm() / hin.detach().norm().clamp_min(1e-12) for d, hin in zip(deltas, inputs, strict=True)]
    )
    return Refinement(
        cosine=cosine.cpu(),
        first_order_cost=cost.cpu(),
        relative_change=rel.cpu(),
        descending_share=descending.cpu(),
    )
