"""Benchmark: the gradient by path length, exact recursion against Veit et al.'s sampling, on equal terms.

Both methods run on the same trained network as chapter 3 (a residual MLP of 24 pre-activation blocks,
trained for 120 steps on the digits) and the same 64 test images, in eval mode.

- The exact recursion computes a_k, the sum of the gradients of all C(L, k) paths of length k, with
  L(L+1)/2 vector-Jacobian products.
- Sampling estimates the *same* vectors: â_k = C(L, k) × the mean of b sampled single-path gradients
  (every path once where C(L, k) ≤ b). Its relative error against a_k is measured for several budgets b,
  with the wall time each budget costs. The speed-up reported is the sampling time needed to bring the
  whole decomposition within 10% of the exact one, divided by the exact method's time.
- Veit et al.'s own curve, C(L, k) × the mean *norm* of the sampled path gradients (a sum of norms), is
  reported too, labelled as what it is: it measures something else than ‖a_k‖ and is not an estimate of it.

Usage: python benchmarks/bench_paths.py [max_budget]   (prints a markdown table; writes no files)
Or:    from bench_paths import run; run(budgets=(10, 100, 1000)) -> dict
"""

from __future__ import annotations

import sys
import time

import torch
from skipflow import data, models, paths, runtime, train

BUDGETS = (10, 30, 100, 300, 1000, 3000, 10000)


def trained_network(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The chapter's residual MLP (24 pre-activation blocks) trained on digits, and 64 test examples."""
    digits = data.load_digits()
    runtime.seed_everything(seed)
    net = models.residual_mlp(64, 10, depth=50, width=64, order="pre", norm="batch")
    train.train(net, digits, steps=120, lr=0.05, seed=seed, progress=False)
    return net.eval(), digits.x_test[:64], digits.y_test[:64]


def _time_exact(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int = 3):
    paths.gradient_by_path_length(net, x, y)  # warm-up (first calls of torch.func are slower)
    best, a = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        a = paths.gradient_by_path_length(net, x, y)
        best = min(best, time.perf_counter() - start)
    return a, best


def run(budgets: tuple[int, ...] = BUDGETS, tolerance: float = 0.1) -> dict:
    """Time the exact recursion and sampling at each budget, and measure sampling's error against a_k.

    Returns a dict with, among others:

    - ``seconds_exact``: the recursion's wall time (best of 3), ``identity_error``: ‖Σ_k a_k − g‖ / ‖g‖;
    - ``budgets``, ``seconds_sampling``, ``decomposition_error``, ``gradient_error``: per budget, the
      sampling wall time, the relative error of the whole decomposition (â_0 … â_L against a_0 … a_L),
      and of Σ_k â_k against the gradient g;
    - ``error_by_length``: per budget, the relative error ‖â_k − a_k‖ / ‖a_k‖ for k = 0 … 8;
    - ``budget_within``/``seconds_within``/``speedup``: the smallest budget whose decomposition error is
      at most ``tolerance``, its wall time, and that time over ``seconds_exact`` (None if no budget
      tried gets there; then ``speedup_at_least`` bounds it from below);
    - ``signed_shares``: c_k = ⟨a_k, g⟩ / ‖g‖² for k = 0 … 8 (they sum to 1 over all k);
      ``effective_signed``: the shortest range of lengths whose shares add up to 0.9;
    - ``veit_sum_of_norms_range`` / ``norm_of_sum_range``: the lengths holding 90% of Veit's curve and of
      ‖a_k‖ (each a sum of norms across lengths, kept for comparison with earlier results).
    """
    budgets = tuple(sorted({int(b) for b in budgets}))
    if not budgets or budgets[0] < 1:
        raise ValueError(f"`budgets` must be positive ints, got {budgets!r}.")
    if not 0 < tolerance < 1:
        raise ValueError(f"`tolerance` must be between 0 and 1, got {tolerance!r}.")
    net, x, y = trained_network()
    a, seconds_exact = _time_exact(net, x, y)
    reference = paths.autograd_gradient(net, x, y)
    curve = paths.sampling_convergence(net, x, y, a, budgets=budgets, seed=0)
    within = curve.budget_for(tolerance)
    index = curve.budgets.tolist().index(within) if within is not None else None
    shares = paths.signed_shares(a)
    exact = paths.exact_profile(a)
    return {
        "n_blocks": net.n_blocks,
        "threads": torch.get_num_threads(),
        "seconds_exact": seconds_exact,
        "identity_error": float((a.sum(0) - reference).norm() / reference.norm()),
        "budgets": curve.budgets.tolist(),
        "seconds_sampling": [round(float(s), 3) for s in curve.seconds],
        "decomposition_error": [round(float(e), 4) for e in curve.total_error],
        "gradient_error": [round(float(e), 4) for e in curve.gradient_error],
        "error_by_length": [[round(float(e), 3) for e in row[:9]] for row in curve.errors],
        "tolerance": tolerance,
        "budget_within": within,
        "seconds_within": None if index is None else float(curve.seconds[index]),
        "speedup": None if index is None else float(curve.seconds[index]) / seconds_exact,
        "speedup_at_least": float(curve.seconds[-1]) / seconds_exact,
        "signed_shares": [round(float(c), 4) for c in shares[:9]],
        "effective_signed": paths.shortest_share_range(shares, 0.9),
        "veit_sum_of_norms_range": paths.effective_lengths(curve.sum_of_norms[-1], 0.9),
        "norm_of_sum_range": paths.effective_lengths(exact.total, 0.9),
    }


def markdown(result: dict) -> str:
    """A markdown table of :func:`run`'s result: one row per sampling budget, then the summary."""
    r = result
    lines = [
        f"Residual MLP, {r['n_blocks']} pre-activation blocks, 64 test images, {r['threads']} torch threads. "
        f"Exact recursion: {r['seconds_exact']:.3f} s (best of 3), ‖Σ_k a_k − autograd‖/‖autograd‖ = "
        f"{r['identity_error']:.1e}.",
        "",
        "| paths sampled per length | sampling time (s) | error of â_0…â_L | error of Σ_k â_k | "
        "error of â_k for k = 1, 2, 3, 4, 5 |",
        "|---|---|---|---|---|",
    ]
    for b, s, e, ge, ek in zip(
        r["budgets"],
        r["seconds_sampling"],
        r["decomposition_error"],
        r["gradient_error"],
        r["error_by_length"],
        strict=True,
    ):
        per_k = ", ".join(f"{v:.2f}" for v in ek[1:6])
        lines.append(f"| {b} | {s:.2f} | {e:.3f} | {ge:.3f} | {per_k} |")
    tol = f"{100 * r['tolerance']:.0f}%"
    if r["budget_within"] is None:
        verdict = (
            f"No budget tried brings the decomposition within {tol}; sampling is at least "
            f"{r['speedup_at_least']:.0f}× slower than the exact recursion."
        )
    else:
        verdict = (
            f"Within {tol}: {r['budget_within']} paths per length, {r['seconds_within']:.2f} s, "
            f"{r['speedup']:.0f}× the exact recursion's time."
        )
    lines += [
        "",
        verdict,
        f"Signed shares c_k = ⟨a_k, g⟩/‖g‖², k = 0…8: {r['signed_shares']}; 90% of g from lengths "
        f"{r['effective_signed']}. Veit et al.'s sum-of-norms curve puts 90% at lengths "
        f"{r['veit_sum_of_norms_range']}, ‖a_k‖ at {r['norm_of_sum_range']}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    top = int(sys.argv[1]) if len(sys.argv) > 1 else BUDGETS[-1]
    print(markdown(run(budgets=tuple(b for b in BUDGETS if b <= top))))
