"""Checkers for chapter 3's exercises (the unraveled view: paths, lesions, the path-length recursion)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from skipflow import runtime
from skipflow.checks._core import Incorrect, as_float, call, exercise, require
from skipflow.models import residual_mlp
from skipflow.paths import recursion_step as _reference_step

__all__ = ["count_paths_of_length", "delete_block", "path_recursion_step"]


@exercise("Counting paths of length k")
def count_paths_of_length(fn: Callable[[int, int], int]) -> None:
    """Check ``fn(n, k)`` returns the number of paths through exactly k of n residual blocks."""
    for n, k in [(3, 0), (3, 1), (3, 2), (3, 3), (10, 4), (7, 7), (54, 19), (54, 27)]:
        got = as_float(call(fn, n, k), f"for n={n}, k={k}, your count")
        expected = math.comb(n, k)
        hint = ""
        if got == 2**n:
            hint = " That is the number of *all* paths; count only those that enter exactly k branches."
        elif got == n**k or got == math.perm(n, k):
            hint = (
                " A path is a *set* of blocks: the order is fixed by the network, so do not count orderings."
            )
        elif got == 2**k:
            hint = " Choose which k of the n blocks the path enters: a binomial coefficient."
        elif got in {math.comb(n + 1, k), math.comb(max(n - 1, 0), k), math.comb(n, k + 1)} or (
            k > 0 and got == math.comb(n, k - 1)
        ):
            hint = " That is off by one: a path of length k enters k of the n blocks, C(n, k)."
        # floats are exact up to 2**53; beyond it (n = 54) allow a float formula's last-digit rounding
        ok = got == expected if expected < 2**53 else math.isclose(got, expected, rel_tol=1e-12)
        require(ok, f"for n={n}, k={k} there are {expected} paths, you returned {got:g}.{hint}")


def _small_net(n_blocks: int, seed: int) -> nn.Module:
    runtime.manual_seed(seed)
    net = residual_mlp(4, 3, depth=2 + 2 * n_blocks, width=6, norm=None)
    return net.eval()


def _forward_without(net: nn.Module, i: int, x: torch.Tensor) -> torch.Tensor:
    h = net.stem(x)
    for j, block in enumerate(net.blocks):
        if j != i:
            h = block(h)
    return net.head(net.final(h))


@exercise("Deleting a block")
def delete_block(fn: Callable[[nn.Module, int], nn.Module]) -> None:
    """Check ``fn(net, i)`` returns a new network without block ``i`` and leaves ``net`` unchanged."""
    x = torch.randn(5, 4, generator=runtime.generator(0))
    for n_blocks, i in [(4, 0), (4, 2), (5, 4)]:
        net = _small_net(n_blocks, seed=n_blocks + i)
        before = net(x).detach().clone()
        new = call(fn, net, i)
        require(
            len(net.blocks) == n_blocks and torch.allclose(net(x), before),
            "you changed the original network. Copy it first (copy.deepcopy) and delete from the copy, "
            "so that one trained network can be lesioned many times.",
        )
        require(
            isinstance(new, nn.Module) and isinstance(getattr(new, "blocks", None), nn.ModuleList),
            f"return the new network (a Net with `.blocks`), not a {type(new).__name__}.",
        )
        require(
            len(new.blocks) == n_blocks - 1,
            f"deleting one of {n_blocks} blocks should leave {n_blocks - 1}; "
            f"your network has {len(new.blocks)}.",
        )
        shared = {id(p) for p in net.parameters()} & {id(p) for p in new.parameters()}
        require(
            not shared,
            "your new network shares its weights with the original, so training or editing the lesioned "
            "copy would change the trained network too. Copy it with copy.deepcopy before deleting.",
        )
        new.eval()
        with torch.no_grad():
            ok = torch.allclose(new(x), _forward_without(net, i, x), atol=1e-6)
        if not ok:
            for j in range(n_blocks):
                if j != i and torch.allclose(new(x), _forward_without(net, j, x), atol=1e-6):
                    raise Incorrect(f"asked to delete block {i}, your network is missing block {j} instead.")
        require(ok, f"after deleting block {i} the output differs from running the other blocks in order.")


def _as_list(result: object, what: str) -> list[torch.Tensor]:
    if isinstance(result, str) or not isinstance(result, Sequence | torch.Tensor):
        raise Incorrect(f"{what} should be a list of tensors, got {type(result).__name__}.")
    entries = []
    for k, v in enumerate(result):
        try:
            entries.append(torch.as_tensor(v, dtype=torch.float64))
        except Exception:
            raise Incorrect(f"{what}: entry {k} should be a tensor, got {type(v).__name__}.") from None
    return entries


@exercise("One step of the path-length recursion")
def path_recursion_step(fn: Callable[[list[torch.Tensor], Callable], list[torch.Tensor]]) -> None:
    """Check ``fn(a, branch_vjp)`` returns the per-length gradients one block further back."""
    gen = runtime.generator(3)
    jac = torch.randn(4, 4, generator=gen, dtype=torch.float64) / 2

    def branch_vjp(v: torch.Tensor) -> torch.Tensor:
        return v @ jac  # the VJP of F(h) = h @ jac.T, for row vectors

    for length in (1, 2, 4):
        a = [torch.randn(4, generator=gen, dtype=torch.float64) for _ in range(length)]
        expected = _reference_step([v.clone() for v in a], branch_vjp)
        got = _as_list(call(fn, [v.clone() for v in a], branch_vjp), "your result")
        if len(got) == len(a):
            raise Incorrect(
                f"given a list of {len(a)}, return {len(a) + 1} entries: a path of the longest length "
                "can also enter this block's branch, which makes it one longer."
            )
        require(
            len(got) == len(expected),
            f"for an input of {len(a)} lengths, expected a list of {len(expected)}, got {len(got)}.",
        )
        old = [*a, torch.zeros_like(a[0])]  # a[len(a)] = 0: no path of that length yet
        nxt = [*old, torch.zeros_like(a[0])]  # for the hint on a[k+1]
        for k, (g, e) in enumerate(zip(got, expected, strict=True)):
            if g.shape != e.shape:
                raise Incorrect(
                    f"entry k={k} has shape {tuple(g.shape)}; each a[k] keeps the shape of the "
                    f"gradient, {tuple(e.shape)}."
                )
            if not torch.allclose(g, e, atol=1e-9):
                hint = ""
                if (
                    k >= 1
                    and g.shape == e.shape
                    and torch.allclose(g, old[k] + branch_vjp(expected[k - 1]), atol=1e-9)
                ):
                    hint = (
                        " You used the *new* a[k-1] (already updated) instead of the old one: "
                        "loop from high k to low, or build a new list."
                    )
                elif k >= 1 and g.shape == e.shape and torch.allclose(g, branch_vjp(a[k - 1]), atol=1e-9):
                    hint = (
                        " Do not forget the paths that skip the block: they keep their length, "
                        "new[k] += a[k]."
                    )
                elif k >= 1 and torch.allclose(g, old[k] + a[k - 1], atol=1e-9):
                    hint = (
                        " A path that enters the branch is multiplied by its Jacobian: add "
                        "branch_vjp(a[k-1]), not a[k-1] itself."
                    )
                elif torch.allclose(g, old[k] + branch_vjp(nxt[k + 1]), atol=1e-9):
                    hint = (
                        " The index is off by one: entering the branch makes a path one *longer*, so "
                        "new[k] gets branch_vjp(a[k-1]), not branch_vjp(a[k+1])."
                    )
                raise Incorrect(f"entry k={k} is wrong.{hint}")
