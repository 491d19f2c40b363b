"""Benchmark: the gradient by path length, Veit et al.'s sampling (a) against the exact recursion (b).

Both methods run on the same trained network as chapter 3 (a residual MLP of 24 pre-activation blocks,
trained for 120 steps on the digits) and the same 64 test images. Method (a) samples ``samples_per_k``
paths for every length k (Veit et al. used 1,000); method (b) needs L(L+1)/2 vector-Jacobian products.

Usage: python benchmarks/bench_paths.py [samples_per_k]   (prints a markdown table; writes no files)
Or:    from bench_paths import run; run(samples_per_k=1000) -> dict
"""

from __future__ import annotations

import sys
import time

import torch
from skipflow import data, models, paths, runtime, train


def trained_network(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The chapter's residual MLP (24 pre-activation blocks) trained on digits, and 64 test examples."""
    digits = data.load_digits()
    runtime.seed_everything(seed)
    net = models.residual_mlp(64, 10, depth=50, width=64, order="pre", norm="batch")
    train.train(net, digits, steps=120, lr=0.05, progress=False)
    return net.eval(), digits.x_test[:64], digits.y_test[:64]


def _log_correlation(u: torch.Tensor, v: torch.Tensor) -> float:
    lu, lv = u.clamp_min(1e-300).log(), v.clamp_min(1e-300).log()
    lu, lv = lu - lu.mean(), lv - lv.mean()
    return float((lu * lv).sum() / (lu.norm() * lv.norm()))


def run(samples_per_k: int = 1000) -> dict:
    """Time methods (a) and (b) on the same trained network and measure how well they agree.

    Returns a dict with the wall times (``seconds_sampled``, ``seconds_exact``), their ratio
    (``speedup``), and agreement measures:

    - ``identity_error``: ‖Σ_k a_k − autograd‖ / ‖autograd‖ for method (b);
    - ``enumerated_error``: at the lengths where (a) enumerates every path, the largest relative difference
      between (a)'s summed path gradients and (b)'s a_k (both exact there);
    - ``log_profile_correlation``: correlation over k of log total(a) and log total(b), the curves' shape;
    - ``effective_sampled`` / ``effective_exact``: the lengths holding 90% of each total;
    - ``norm_of_sum_over_sum_of_norms``: Σ_k ‖a_k‖ / Σ_k total_a[k] (at most 1, up to sampling noise).
    """
    if isinstance(samples_per_k, bool) or not isinstance(samples_per_k, int) or samples_per_k < 1:
        raise ValueError(f"`samples_per_k` must be a positive int, got {samples_per_k!r}.")
    net, x, y = trained_network()
    paths.gradient_by_path_length(net, x, y)  # warm-up (first calls of torch.func are slower)

    start = time.perf_counter()
    a = paths.gradient_by_path_length(net, x, y)
    seconds_exact = time.perf_counter() - start
    start = time.perf_counter()
    sampled = paths.sample_path_gradients(net, x, y, samples_per_k=samples_per_k, seed=0)
    seconds_sampled = time.perf_counter() - start

    exact = paths.exact_profile(a)
    reference = paths.autograd_gradient(net, x, y)
    enumerated = sampled.exact_k
    diffs = (sampled.estimate - a).flatten(1).norm(dim=1) / a.flatten(1).norm(dim=1).clamp_min(1e-30)
    return {
        "n_blocks": net.n_blocks,
        "samples_per_k": samples_per_k,
        "threads": torch.get_num_threads(),
        "seconds_sampled": seconds_sampled,
        "seconds_exact": seconds_exact,
        "speedup": seconds_sampled / seconds_exact,
        "identity_error": float((a.sum(0) - reference).norm() / reference.norm()),
        "enumerated_lengths": torch.nonzero(enumerated).flatten().tolist(),
        "enumerated_error": float(diffs[enumerated].max()),
        "log_profile_correlation": _log_correlation(sampled.total, exact.total),
        "effective_sampled": paths.effective_lengths(sampled.total),
        "effective_exact": paths.effective_lengths(exact.total),
        "peak_sampled": int(sampled.total.argmax()),
        "peak_exact": int(exact.total.argmax()),
        "norm_of_sum_over_sum_of_norms": float(exact.total.sum() / sampled.total.sum()),
    }


def markdown(result: dict) -> str:
    """A short markdown table of :func:`run`'s result."""
    r = result
    rows = [
        ("network", f"residual MLP, {r['n_blocks']} pre-activation blocks, {r['threads']} torch threads"),
        ("(a) sampling, wall time", f"{r['seconds_sampled']:.2f} s ({r['samples_per_k']} paths per k)"),
        ("(b) exact recursion, wall time", f"{r['seconds_exact']:.3f} s"),
        ("speed-up of (b) over (a)", f"{r['speedup']:.0f}×"),
        ("(b): ‖Σ_k a_k − autograd‖ / ‖autograd‖", f"{r['identity_error']:.1e}"),
        (f"(a) vs (b) where (a) enumerates (k = {r['enumerated_lengths']})", f"{r['enumerated_error']:.1e}"),
        ("correlation of log totals over k", f"{r['log_profile_correlation']:.3f}"),
        ("90% of the gradient, (a) / (b)", f"k = {r['effective_sampled']} / k = {r['effective_exact']}"),
        ("peak length, (a) / (b)", f"{r['peak_sampled']} / {r['peak_exact']}"),
        ("Σ‖a_k‖ / Σ (sum of norms)", f"{r['norm_of_sum_over_sum_of_norms']:.3f}"),
    ]
    lines = ["| quantity | value |", "|---|---|"] + [f"| {q} | {v} |" for q, v in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    print(markdown(run(samples_per_k=n)))
