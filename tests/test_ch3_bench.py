"""The path benchmark runs, agrees with the exact decomposition, and reports a speed-up."""

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
    result = bench.run(samples_per_k=3)
    assert result["identity_error"] < 1e-4  # float32 round-off
    assert result["enumerated_error"] < 1e-4  # both methods exact where (a) enumerates every path
    assert result["norm_of_sum_over_sum_of_norms"] <= 1.5  # sampling noise allowed at 3 samples
    assert result["speedup"] > 0
    table = bench.markdown(result)
    assert table.startswith("| quantity | value |")
    with pytest.raises(ValueError, match="samples_per_k"):
        bench.run(samples_per_k=0)
