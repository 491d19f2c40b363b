"""Wrong answers to the warm-up exercise of the "How to use this book" page."""

from __future__ import annotations

from torch import nn

from wrong_answers import Entry, Wrong


def reference(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


CATALOGUE = [
    Entry(
        checker="count_parameters",
        reference=reference,
        wrong=[
            Wrong("hardcoded", "the count of nn.Linear(3, 2)", lambda model: 8, "the count is"),
            Wrong(
                "mechanism",
                "counts frozen parameters too",
                lambda model: sum(p.numel() for p in model.parameters()),
                "requires_grad",
            ),
            Wrong(
                "mechanism",
                "counts weights only",
                lambda model: sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight")),
                "bias",
            ),
            Wrong(
                "off_by_one",
                "one too many per layer",
                lambda model: reference(model) + 1,
                "the count is",
            ),
            Wrong(
                "shape",
                "a list of per-tensor counts",
                lambda model: [p.numel() for p in model.parameters() if p.requires_grad],
                "should be a number",
            ),
        ],
    )
]
