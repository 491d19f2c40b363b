"""Wrong answers to chapter 4's exercises: the pre-activation refactor, λ^L, and the clean orderings."""

from __future__ import annotations

import torch
from skipflow import runtime
from skipflow.checks import ch4

from wrong_answers import Entry, Wrong

relu = torch.relu


def refactor_reference(x, p):
    out = p.lin1(relu(p.bn1(x)))
    out = p.lin2(relu(p.bn2(out)))
    return x + out


def refactor_hardcoded(x, p):
    """Returns, whatever it is given, the output of the checker's first case (computed the same way)."""
    parts = ch4._parts(seed=0)
    first = torch.randn(5, 6, generator=runtime.generator(10))
    with torch.no_grad():
        return refactor_reference(first, parts)


def fresh_layers(x, p):
    """Builds new layers instead of using the four it was given."""
    lin1, lin2 = torch.nn.Linear(6, 6), torch.nn.Linear(6, 6)
    return x + lin2(relu(lin1(relu(x))))


class _CrashingIterable:
    """An answer whose iteration raises, as a half-written generator does."""

    def __iter__(self):
        raise RuntimeError("half-written generator")


CLEAN = {"relu_before_add", "relu_only_preact", "full_preact"}

CATALOGUE = [
    Entry(
        checker="full_preact_refactor",
        reference=refactor_reference,
        wrong=[
            Wrong(
                "hardcoded", "the output of the checker's first case", refactor_hardcoded, "does not match"
            ),
            Wrong(
                "mechanism",
                "no shortcut: returns F(x)",
                lambda x, p: refactor_reference(x, p) - x,
                "shortcut",
            ),
            Wrong(
                "mechanism",
                "keeps a ReLU after the addition",
                lambda x, p: relu(refactor_reference(x, p)),
                "ReLU after the addition",
            ),
            Wrong(
                "mechanism",
                "still the post-activation block",
                lambda x, p: relu(x + p.bn2(p.lin2(relu(p.bn1(p.lin1(x)))))),
                "post-activation",
            ),
            Wrong(
                "mechanism",
                "branch without its nonlinearity",
                lambda x, p: x + p.lin2(p.bn2(p.lin1(p.bn1(x)))),
                "no ReLU",
            ),
            Wrong(
                "mechanism",
                "ReLU-only pre-activation (d)",
                lambda x, p: x + p.bn2(p.lin2(relu(p.bn1(p.lin1(relu(x)))))),
                "ReLU-only",
            ),
            Wrong("mechanism", "new layers instead of the given ones", fresh_layers, "does not match"),
            Wrong(
                "off_by_one",
                "bn1 and bn2 one layer off (swapped)",
                lambda x, p: x + p.lin2(relu(p.bn1(p.lin1(relu(p.bn2(x)))))),
                "swapped",
            ),
            Wrong(
                "off_by_one",
                "one pre-activation too few (none before lin1)",
                lambda x, p: x + p.lin2(relu(p.bn2(p.lin1(x)))),
                "first BN → ReLU",
            ),
            Wrong(
                "off_by_one",
                "one pre-activation too few (none before lin2)",
                lambda x, p: x + p.lin2(p.lin1(relu(p.bn1(x)))),
                "second BN → ReLU",
            ),
            Wrong("shape", "flattened output", lambda x, p: refactor_reference(x, p).flatten(), "shape"),
            Wrong("shape", "one number per example", lambda x, p: refactor_reference(x, p).sum(1), "shape"),
        ],
    ),
    Entry(
        checker="shortcut_attenuation",
        reference=lambda lam, L: lam**L,
        wrong=[
            Wrong("hardcoded", "the first case's answer, 0.5", lambda lam, L: 0.5, "the factor is"),
            Wrong("hardcoded", "the exercise's number, 0.5^54", lambda lam, L: 0.5**54, "the factor is"),
            Wrong(
                "mechanism",
                "a product λ·L instead of a power",
                lambda lam, L: lam * L,
                "power, not a product",
            ),
            Wrong("mechanism", "scales by 1 − λ", lambda lam, L: (1 - lam) ** L, "not by 1 − λ"),
            Wrong("off_by_one", "λ^(L−1)", lambda lam, L: lam ** (L - 1), "L factors"),
            Wrong("off_by_one", "λ^(L+1)", lambda lam, L: lam ** (L + 1), "L factors"),
            Wrong("shape", "one factor per block, as a list", lambda lam, L: [lam] * L, "should be a number"),
            Wrong(
                "shape",
                "one factor per block, as a tensor",
                lambda lam, L: torch.full((max(L, 2),), float(lam)),
                "single number",
            ),
        ],
    ),
    Entry(
        checker="clean_identity_orderings",
        reference=CLEAN,
        wrong=[
            Wrong("mechanism", "only the paper's favourite", {"full_preact"}, "missing"),
            Wrong(
                "mechanism",
                "only the two pre-activation orderings",
                {"relu_only_preact", "full_preact"},
                "F ≥ 0",
            ),
            Wrong("mechanism", "every ordering", set(ch4.ORDERINGS), "included but not clean"),
            Wrong(
                "mechanism", "the original counts as clean", CLEAN | {"original"}, "ReLU after the addition"
            ),
            Wrong(
                "off_by_one",
                "(b), (c), (d): shifted one place in the list",
                {"bn_after_add", "relu_before_add", "relu_only_preact"},
                "included but not clean",
            ),
            Wrong("shape", "one name as a plain string", "full_preact", "plain string"),
            Wrong("shape", "the set nested inside a list", [sorted(CLEAN)], "ordering name (a string)"),
            Wrong("shape", "the figure's letters", {"c", "d", "e"}, "unknown name"),
        ],
        not_applicable={
            "hardcoded": "the answer is a set of names, not a function: there is no test case whose output "
            "could be hard-coded",
        },
        crash=_CrashingIterable(),
        crash_says="RuntimeError",
    ),
]
