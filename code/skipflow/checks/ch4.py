"""Checkers for chapter 4's exercises (pre-activation, shortcut variants)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from skipflow import runtime
from skipflow.checks._core import (
    Incorrect,
    StudentError,
    as_float,
    as_tensor,
    call,
    exercise,
    is_placeholder,
    require,
)
from skipflow.orderings import ORDERINGS, BlockParts, has_clean_identity_path

__all__ = ["clean_identity_orderings", "full_preact_refactor", "shortcut_attenuation"]


def _parts(width: int = 6, seed: int = 0) -> BlockParts:
    """Block parts with non-trivial BatchNorm statistics and affine parameters, in eval mode."""
    gen = runtime.generator(seed)
    parts = BlockParts(width)
    with torch.no_grad():
        for bn in (parts.bn1, parts.bn2):
            bn.running_mean.copy_(torch.randn(width, generator=gen) * 0.3)
            bn.running_var.copy_(torch.rand(width, generator=gen) + 0.5)
            bn.weight.copy_(torch.rand(width, generator=gen) + 0.5)
            bn.bias.copy_(torch.randn(width, generator=gen) * 0.3)
    return parts.eval()


def _variants(x: torch.Tensor, p: BlockParts) -> dict[str, torch.Tensor]:
    relu = torch.relu
    branch = p.lin2(relu(p.bn2(p.lin1(relu(p.bn1(x))))))
    return {
        "reference": x + branch,
        "relu_after_add": relu(x + branch),
        "no_shortcut": branch,
        "post": relu(x + p.bn2(p.lin2(relu(p.bn1(p.lin1(x)))))),
        "relu_only": x + p.bn2(p.lin2(relu(p.bn1(p.lin1(relu(x)))))),
        "bn_swapped": x + p.lin2(relu(p.bn1(p.lin1(relu(p.bn2(x)))))),
        "no_relu": x + p.lin2(p.bn2(p.lin1(p.bn1(x)))),
        "no_first_preact": x + p.lin2(relu(p.bn2(p.lin1(x)))),
        "no_second_preact": x + p.lin2(p.lin1(relu(p.bn1(x)))),
    }


_HINTS = {
    "relu_after_add": "There is still a ReLU after the addition: in full pre-activation nothing follows the "
    "`+`, so the block returns `x + F(x)` exactly.",
    "no_shortcut": "You return the branch F(x) only: add the shortcut, `x + F(x)`.",
    "post": "That is still the post-activation block. Move BN and ReLU *before* each weight layer.",
    "relu_only": "That is the ReLU-only pre-activation (d): BN still follows each weight layer. Full "
    "pre-activation puts BN → ReLU before each weight layer.",
    "bn_swapped": "Close: the order is right but `bn1` and `bn2` are swapped. `bn1` normalizes the block "
    "input, `bn2` the output of `lin1`.",
    "no_relu": "Your branch has no ReLU: BN → ReLU → weight, twice. Without the nonlinearity the branch is "
    "a linear map.",
    "no_first_preact": "`lin1` sees the raw input: the first BN → ReLU (`bn1`, then ReLU) is missing "
    "before it.",
    "no_second_preact": "`lin2` sees the raw output of `lin1`: the second BN → ReLU (`bn2`, then ReLU) is "
    "missing before it.",
}


@exercise("Refactor into full pre-activation")
def full_preact_refactor(fn: Callable[[torch.Tensor, BlockParts], torch.Tensor]) -> None:
    """Check ``fn(x, parts)`` computes ``x + W2 · ReLU(BN2(W1 · ReLU(BN1(x))))`` with ``parts``' layers."""
    for seed in range(2):
        parts = _parts(seed=seed)
        x = torch.randn(5, 6, generator=runtime.generator(10 + seed))
        with torch.no_grad():
            got = call(fn, x.clone(), parts)
            expected = _variants(x, parts)
        got = as_tensor(got, "your block's output")
        require(
            tuple(got.shape) == tuple(x.shape),
            f"the output should have the input's shape {tuple(x.shape)}, got {tuple(got.shape)}.",
        )
        if torch.allclose(got, expected["reference"].double(), atol=1e-5):
            continue
        for name, value in expected.items():
            if name != "reference" and torch.allclose(got, value.double(), atol=1e-5):
                raise Incorrect(_HINTS[name])
        raise Incorrect(
            "the output does not match x + lin2(relu(bn2(lin1(relu(bn1(x)))))). Check the order: "
            "BN → ReLU → weight, twice, then add the input."
        )


def _reference_attenuation(lam: float, depth: int) -> float:
    return lam**depth


@exercise("Attenuation of a λ-scaled shortcut")
def shortcut_attenuation(fn: Callable[[float, int], float]) -> None:
    """Check ``fn(lam, depth)`` returns λ^depth, the factor on the shortcut-only gradient path."""
    cases = [(0.5, 1), (0.5, 10), (0.9, 54), (1.0, 100), (1.1, 20), (0.5, 0)]
    for lam, depth in cases:
        got = as_float(call(fn, lam, depth), f"for λ={lam}, L={depth}, your factor")
        expected = _reference_attenuation(lam, depth)
        if abs(got - expected) <= 1e-9 + 1e-6 * abs(expected):
            continue
        hint = ""
        if depth > 0 and abs(got - lam * depth) < 1e-9:
            hint = " The factors multiply, one per block: it is a power, not a product λ·L."
        elif depth > 0 and any(abs(got - lam**k) < 1e-12 + 1e-6 * lam**k for k in (depth - 1, depth + 1)):
            hint = " Count again: each of the L blocks scales the shortcut once, so there are L factors."
        elif abs(got - (1 - lam) ** depth) < 1e-12 + 1e-6 * (1 - lam) ** depth:
            hint = " The shortcut is scaled by λ, not by 1 − λ."
        raise Incorrect(
            f"for λ={lam} and L={depth} the factor is {expected:.6g}, you returned {got:.6g}.{hint}"
        )


_EXPLAIN = {
    "original": "(a) original has a ReLU after the addition: every block multiplies the shortcut's "
    "gradient by the ReLU mask.",
    "bn_after_add": "(b) puts BN (and a ReLU) after the addition: the shortcut's gradient passes through "
    "every BN's Jacobian.",
    "relu_before_add": "(c) ReLU before addition: nothing follows the `+`, so the identity path is clean. "
    "(Its problem is elsewhere: F ≥ 0, so the stream can only grow.)",
    "relu_only_preact": "(d) ReLU-only pre-activation: nothing follows the `+`, so the identity path is "
    "clean.",
    "full_preact": "(e) full pre-activation: nothing follows the `+`, so the identity path is clean.",
}


@exercise("Which orderings keep a clean identity path?")
def clean_identity_orderings(answer: Iterable[str]) -> None:
    """Check ``answer`` is the set of orderings whose blocks compute exactly ``h + F(h)``."""
    if is_placeholder(answer):
        call(None)
    if isinstance(answer, str) or not isinstance(answer, Iterable):
        raise Incorrect(
            "answer with a set of ordering names, e.g. {'full_preact'}; a plain string is not a set."
        )
    try:
        items = list(answer)
    except Exception as exc:  # the reader's iterable may raise anything while it is iterated
        raise StudentError(exc) from exc
    strange = [item for item in items if not isinstance(item, str)]
    if strange:
        raise Incorrect(
            "each element should be an ordering name (a string) such as 'full_preact'; got "
            f"{strange[0]!r} ({type(strange[0]).__name__})."
        )
    chosen = set(items)
    unknown = chosen - set(ORDERINGS)
    require(not unknown, f"unknown name(s) {sorted(unknown)}; use names from {list(ORDERINGS)}.")
    expected = {o for o in ORDERINGS if has_clean_identity_path(o)}
    wrong_in = sorted(chosen - expected, key=ORDERINGS.index)
    missing = sorted(expected - chosen, key=ORDERINGS.index)
    if wrong_in or missing:
        lines = [f"included but not clean: {_EXPLAIN[o]}" for o in wrong_in]
        lines += [f"missing: {_EXPLAIN[o]}" for o in missing]
        raise Incorrect(f"{len(wrong_in) + len(missing)} of 5 wrong.\n   " + "\n   ".join(lines))
