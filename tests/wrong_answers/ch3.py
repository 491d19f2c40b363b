"""Wrong answers to chapter 3's exercises: counting paths, deleting a block, one step of the recursion."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from wrong_answers import Entry, Wrong

# ---------------------------------------------------------------------------------------------------------
# count_paths_of_length(n, k)
# ---------------------------------------------------------------------------------------------------------


def count_reference(n, k):
    return math.comb(n, k)


def count_with_floats(n, k):  # a correct formula in float arithmetic: must be accepted too
    return math.factorial(n) / (math.factorial(k) * math.factorial(n - k))


COUNT = Entry(
    checker="count_paths_of_length",
    reference=count_reference,
    wrong=[
        Wrong("hardcoded", "the count for n=3, k=1", lambda n, k: 3, "there are"),
        Wrong("mechanism", "all 2^n paths", lambda n, k: 2**n, "*all* paths"),
        Wrong("mechanism", "ordered choices", lambda n, k: math.perm(n, k), "do not count orderings"),
        Wrong("mechanism", "2^k", lambda n, k: 2**k, "binomial coefficient"),
        Wrong("off_by_one", "C(n + 1, k)", lambda n, k: math.comb(n + 1, k), "off by one"),
        Wrong("off_by_one", "C(n, k + 1)", lambda n, k: math.comb(n, k + 1), "off by one"),
        Wrong(
            "shape",
            "the whole distribution",
            lambda n, k: [math.comb(n, j) for j in range(n + 1)],
            "should be a number",
        ),
        Wrong("shape", "a one-element tensor list", lambda n, k: torch.tensor([1.0, 2.0]), "single number"),
    ],
)

# ---------------------------------------------------------------------------------------------------------
# delete_block(net, i)
# ---------------------------------------------------------------------------------------------------------


def delete_reference(net, i):
    new = copy.deepcopy(net)
    new.blocks = nn.ModuleList([block for j, block in enumerate(new.blocks) if j != i])
    return new


def delete_first_always(net, i):  # the answer of the checker's first case, (4 blocks, i = 0)
    return delete_reference(net, 0)


def delete_in_place(net, i):
    del net.blocks[i]
    return net


def delete_shallow_copy(net, i):
    new = copy.copy(net)  # shares net._modules: assigning new.blocks rewires net as well
    new.blocks = nn.ModuleList([block for j, block in enumerate(new.blocks) if j != i])
    return new


def delete_sharing_weights(net, i):
    return type(net)(net.stem, [b for j, b in enumerate(net.blocks) if j != i], net.final, net.head)


def delete_next(net, i):
    return delete_reference(net, (i + 1) % len(net.blocks))


def delete_one_based(net, i):
    new = copy.deepcopy(net)
    del new.blocks[i - 1]  # block i counted from 1: deletes the one before (the last one for i = 0)
    return new


def delete_returns_blocks(net, i):
    return delete_reference(net, i).blocks


def delete_keeps_count(net, i):
    new = copy.deepcopy(net)
    new.blocks[i] = nn.Identity()  # same outputs, but the block is still there
    return new


DELETE = Entry(
    checker="delete_block",
    reference=delete_reference,
    wrong=[
        Wrong("hardcoded", "always deletes block 0", delete_first_always, "missing block 0 instead"),
        Wrong("mechanism", "deletes from the original", delete_in_place, "changed the original network"),
        Wrong("mechanism", "copy.copy instead of deepcopy", delete_shallow_copy, "changed the original"),
        Wrong("mechanism", "a new Net on the same modules", delete_sharing_weights, "shares its weights"),
        Wrong("mechanism", "replaces the block by Identity", delete_keeps_count, "should leave"),
        Wrong("off_by_one", "deletes block i + 1", delete_next, "missing block"),
        Wrong("off_by_one", "1-based index", delete_one_based, "missing block"),
        Wrong("shape", "returns the ModuleList", delete_returns_blocks, "return the new network"),
    ],
)

# ---------------------------------------------------------------------------------------------------------
# recursion_step(a, branch_vjp)
# ---------------------------------------------------------------------------------------------------------


def step_reference(a, branch_vjp):
    through = [branch_vjp(v) for v in a]
    return [a[0]] + [a[k] + through[k - 1] for k in range(1, len(a))] + [through[-1]]


def step_memorized():
    """Returns, every time, the answer to the first list it was given (a hard-coded answer)."""
    first: list = []

    def answer(a, branch_vjp):
        if not first:
            first.append(step_reference(a, branch_vjp))
        return first[0]

    return answer


def step_in_place_low_to_high(a, branch_vjp):
    a = [*a, torch.zeros_like(a[0])]
    for k in range(1, len(a)):
        a[k] = a[k] + branch_vjp(a[k - 1])
    return a


def step_no_skip(a, branch_vjp):
    return [a[0]] + [branch_vjp(a[k - 1]) for k in range(1, len(a) + 1)]


def step_no_jacobian(a, branch_vjp):
    return [a[0]] + [a[k] + a[k - 1] for k in range(1, len(a))] + [a[-1]]


def step_no_growth(a, branch_vjp):
    return [a[0]] + [a[k] + branch_vjp(a[k - 1]) for k in range(1, len(a))]


def step_wrong_direction(a, branch_vjp):
    old = [*a, torch.zeros_like(a[0]), torch.zeros_like(a[0])]
    return [old[k] + branch_vjp(old[k + 1]) for k in range(len(a) + 1)]


def step_row_vectors(a, branch_vjp):
    return [v.unsqueeze(0) for v in step_reference(a, branch_vjp)]


STEP = Entry(
    checker="path_recursion_step",
    reference=step_reference,
    wrong=[
        Wrong("hardcoded", "the answer to the first case, always", step_memorized(), "return"),
        Wrong("mechanism", "in place, low k to high", step_in_place_low_to_high, "high k to low"),
        Wrong("mechanism", "forgets the skipping paths", step_no_skip, "skip the block"),
        Wrong("mechanism", "adds a[k-1] without the branch", step_no_jacobian, "Jacobian"),
        Wrong("off_by_one", "does not grow the list", step_no_growth, "one longer"),
        Wrong("off_by_one", "takes a[k+1] instead of a[k-1]", step_wrong_direction, "off by one"),
        Wrong("shape", "entries as (1, d) rows", step_row_vectors, "has shape"),
    ],
)

CATALOGUE = [COUNT, DELETE, STEP]
