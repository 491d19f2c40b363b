"""Wrong answers to chapter 6's exercises (the residual stream in Transformers)."""

from __future__ import annotations

import torch

from wrong_answers import Entry, Wrong


# --- res(X) ------------------------------------------------------------------------------------------
def res_reference(x):
    return (x - x.mean(dim=0, keepdim=True)).norm() / x.norm()


def _first_case_res() -> float:
    from skipflow.checks.ch6 import _matrices

    return float(res_reference(_matrices()[0][1]))


RES_WRONG = [
    Wrong("hardcoded", "the value of the first case", lambda x: _first_case_res(), "res(X) is"),
    Wrong(
        "mechanism", "forgets to subtract the mean token", lambda x: x.norm() / x.norm(), "Subtract the mean"
    ),
    Wrong(
        "mechanism",
        "averages over the features instead of the tokens",
        lambda x: (x - x.mean(dim=1, keepdim=True)).norm() / x.norm(),
        "Average over the tokens",
    ),
    Wrong("mechanism", "no division by ‖X‖", lambda x: (x - x.mean(0)).norm(), "Divide by"),
    Wrong(
        "off_by_one",
        "divides the sum of the tokens by T − 1",
        lambda x: (x - x.sum(0) / (x.shape[0] - 1)).norm() / x.norm(),
        "not by T − 1",
    ),
    Wrong(
        "shape",
        "returns the per-token distances",
        lambda x: (x - x.mean(0)).norm(dim=1) / x.norm(),
        "should be a single number",
    ),
]


# --- one Sinkhorn step -------------------------------------------------------------------------------
def sinkhorn_reference(m):
    m = m / m.sum(dim=-1, keepdim=True)
    return m / m.sum(dim=-2, keepdim=True)


def _first_case_sinkhorn():
    from skipflow.checks.ch6 import _positive_matrices

    return sinkhorn_reference(_positive_matrices()[0][1].double())


def _cols_then_rows(m):
    m = m / m.sum(dim=-2, keepdim=True)
    return m / m.sum(dim=-1, keepdim=True)


SINKHORN_WRONG = [
    Wrong("hardcoded", "the result of the first case", lambda m: _first_case_sinkhorn(), "should have shape"),
    Wrong(
        "mechanism",
        "normalizes the rows only",
        lambda m: m / m.sum(dim=-1, keepdim=True),
        "divide every column",
    ),
    Wrong("mechanism", "columns first, then rows", _cols_then_rows, "Normalize the rows first"),
    Wrong(
        "mechanism",
        "divides by the total sum",
        lambda m: m / m.sum(),
        "differs from one rows-then-columns step",
    ),
    Wrong(
        "off_by_one",
        "two steps instead of one",
        lambda m: sinkhorn_reference(sinkhorn_reference(m)),
        "two steps",
    ),
    Wrong("shape", "returns the row sums", lambda m: sinkhorn_reference(m).sum(-1), "should have shape"),
]


# --- Pre-LN refactor ---------------------------------------------------------------------------------
def pre_ln_reference(x, parts):
    x = x + parts.attn(parts.ln1(x))
    return x + parts.mlp(parts.ln2(x))


def _first_case_output():
    from skipflow.checks.ch6 import _parts_cases
    from skipflow.transformer import block_parts

    _, block, x = _parts_cases()[0]
    with torch.no_grad():
        return pre_ln_reference(x, block_parts(block))


def _still_post(x, parts):
    x = parts.ln1(x + parts.attn(x))
    return parts.ln2(x + parts.mlp(x))


def _normalized_stream(x, parts):
    x = parts.ln1(x)
    x = x + parts.attn(x)
    return x + parts.mlp(parts.ln2(x))


def _swapped_norms(x, parts):
    x = x + parts.attn(parts.ln2(x))
    return x + parts.mlp(parts.ln1(x))


def _parallel(x, parts):
    return x + parts.attn(parts.ln1(x)) + parts.mlp(parts.ln2(x))


REFACTOR_WRONG = [
    Wrong(
        "hardcoded",
        "the output of the first case",
        lambda x, parts: _first_case_output(),
        "should have shape",
    ),
    Wrong("mechanism", "leaves the LayerNorms after the additions", _still_post, "a LayerNorm still follows"),
    Wrong("mechanism", "normalizes the stream itself", _normalized_stream, "not LN(x)"),
    Wrong(
        "mechanism", "reads the MLP from the block input (parallel block)", _parallel, "after the attention"
    ),
    Wrong("mechanism", "drops the MLP branch", lambda x, parts: x + parts.attn(parts.ln1(x)), "Add the MLP"),
    Wrong(
        "off_by_one", "uses ln2 for the first branch and ln1 for the second", _swapped_norms, "ln1 belongs"
    ),
    Wrong(
        "shape",
        "flattens batch and tokens",
        lambda x, parts: pre_ln_reference(x, parts).flatten(0, 1),
        "should have shape",
    ),
]


# --- the Pre-LN gradient slope -----------------------------------------------------------------------
SLOPE_WRONG = [
    Wrong("mechanism", "Post-LN's slope", 0.0, "Post-LN"),
    Wrong("mechanism", "the wrong sign", 0.5, "negative"),
    Wrong("off_by_one", "the stream growing like L instead of √L", -1.0, "like √L"),
    Wrong("shape", "a list of slopes", [-0.5, -0.5], "single number"),
    Wrong("other", "the slope measured on one seed", -0.3, "is not what"),
]


CATALOGUE = [
    Entry(checker="rank_one_residual", reference=res_reference, wrong=RES_WRONG),
    Entry(checker="sinkhorn_one_step", reference=sinkhorn_reference, wrong=SINKHORN_WRONG),
    Entry(checker="pre_ln_refactor", reference=pre_ln_reference, wrong=REFACTOR_WRONG),
    Entry(
        checker="pre_ln_gradient_slope",
        reference=-0.5,
        wrong=SLOPE_WRONG,
        not_applicable={
            "hardcoded": "the answer is one number that depends on no case: there is nothing to hard-code"
        },
        crash=lambda: 1 / 0,
    ),
]
