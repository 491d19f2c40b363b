"""The path benchmark compares the exact decomposition and sampling on equal terms, and reports it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_paths.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_paths", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_paths_small_run():
    bench = _load()
    result = bench.run(budgets=(3, 30), tolerance=0.5)
    assert result["identity_error"] < 1e-4  # float32 round-off
    assert result["budgets"] == [3, 30]
    assert (
        len(result["seconds_sampling"]) == 2 and result["seconds_sampling"][1] > result["seconds_sampling"][0]
    )
    # k = 0 is one path and k = 1 has 24 ≤ 30: both exact at budget 30
    assert result["error_by_length"][1][0] < 1e-4 and result["error_by_length"][1][1] < 1e-4
    # more samples, a smaller error of the whole decomposition (3 → 30 paths per length)
    assert result["decomposition_error"][1] < result["decomposition_error"][0]
    assert abs(sum(result["signed_shares"]) - 1) < 0.05  # k > 8 carry almost nothing
    if result["budget_within"] is None:
        assert result["speedup"] is None and result["speedup_at_least"] > 0
    else:
        assert result["speedup"] == pytest.approx(result["seconds_within"] / result["seconds_exact"])
    table = bench.markdown(result)
    assert "| paths sampled per length |" in table and "Signed shares" in table
    with pytest.raises(ValueError, match="budgets"):
        bench.run(budgets=(0,))
    with pytest.raises(ValueError, match="tolerance"):
        bench.run(budgets=(3,), tolerance=2.0)


def test_markdown_reports_a_missed_tolerance():
    bench = _load()
    fake = {
        "n_blocks": 24,
        "threads": 1,
        "seconds_exact": 0.05,
        "identity_error": 1e-7,
        "budgets": [10],
        "seconds_sampling": [1.0],
        "decomposition_error": [0.5],
        "gradient_error": [0.4],
        "error_by_length": [[0.0] * 9],
        "tolerance": 0.1,
        "budget_within": None,
        "seconds_within": None,
        "speedup": None,
        "speedup_at_least": 20.0,
        "signed_shares": [0.1] * 9,
        "effective_signed": (0, 5),
        "veit_sum_of_norms_range": (1, 7),
        "norm_of_sum_range": (0, 5),
    }
    assert "at least 20× slower" in bench.markdown(fake)
