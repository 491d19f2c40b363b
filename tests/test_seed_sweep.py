"""tools/seed_sweep.py tabulates every ledger claim per seed offset and shows where a run stopped."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import seed_sweep  # noqa: E402

SETUP = f"import sys; sys.path.insert(0, {str(ROOT / 'code')!r}); import skipflow; skipflow.claims.reset()"
CLAIMS = """
offset = skipflow.runtime.seed_offset()
skipflow.claims.check_between("the offset is at most 1", offset, high=1, why="a test")
skipflow.claims.check_between("a constant", 7, low=7, high=7, why="a test")
"""


def _page(folder):
    """A two-cell notebook: the setup, then one claim that fails above offset 1 and one that always holds."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell(CLAIMS)]
    path = folder / "page.ipynb"
    nbformat.write(nb, path)
    return path


def test_sweep_lists_each_claim_per_offset_and_where_a_run_stopped(tmp_path, monkeypatch):
    monkeypatch.delenv("SKIPFLOW_SEED_OFFSET", raising=False)
    path = _page(tmp_path)
    table = seed_sweep.sweep(path, [0, 2])
    rows = table.splitlines()
    assert rows[0] == "| claim | condition | offset 0 | offset 2 |"
    offset_row = next(r for r in rows if r.startswith("| the offset is at most 1"))
    assert offset_row.endswith("| 0 | 2 |")  # the failing run still records the value it failed on
    constant_row = next(r for r in rows if r.startswith("| a constant"))
    assert constant_row.endswith("| 7 | — |")  # offset 2 stopped before this claim
    assert "**offset 2 stopped:**" in table and "**offset 0 stopped:**" not in table
    assert "SKIPFLOW_SEED_OFFSET" not in os.environ  # the caller's environment is left as it was


def test_keep_going_marks_a_failed_claim_and_runs_on(tmp_path, monkeypatch):
    monkeypatch.delenv("SKIPFLOW_SEED_OFFSET", raising=False)
    path = _page(tmp_path)
    table = seed_sweep.sweep(path, [2], keep_going=True)
    offset_row = next(r for r in table.splitlines() if r.startswith("| the offset is at most 1"))
    assert offset_row.endswith("| FAIL 2 |")
    constant_row = next(r for r in table.splitlines() if r.startswith("| a constant"))
    assert constant_row.endswith("| 7 |")  # the run went on past the failed claim
    assert "stopped:**" not in table
    assert seed_sweep.main([str(path), "--offsets", "2", "--keep-going"]) == 1  # a FAIL still fails the sweep
