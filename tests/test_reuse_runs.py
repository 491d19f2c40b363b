"""nbval's run of a chapter doubles as the build's: only whole, passing, unshifted runs of current code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import reuse_runs  # noqa: E402


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A page")] + [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def _run_nbval(folder: Path, out: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--nbval-lax",
            "--nbval-current-env",
            "--rootdir",
            str(ROOT),
            "-c",
            str(ROOT / "pyproject.toml"),
            str(folder),
        ],
        cwd=ROOT,
        env={**os.environ, "SKIPFLOW_EXECUTED_DIR": str(out), **env},
        capture_output=True,
        text=True,
    )


@pytest.fixture
def pages():
    # Under the repository root, so that pytest applies the repository's conftest.py to these notebooks.
    (ROOT / "_build").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="reuse_runs_test_", dir=ROOT / "_build"))
    yield folder
    shutil.rmtree(folder)


def test_nbval_writes_passing_runs_with_outputs_and_never_a_failing_one(pages, tmp_path):
    nbformat.write(_notebook("x = 6 * 7", "print(x)"), pages / "good.ipynb")
    nbformat.write(_notebook("print('partial')", "1 / 0"), pages / "bad.ipynb")
    result = _run_nbval(pages, tmp_path / "runs")
    assert "1 failed" in result.stdout, result.stdout
    assert not (tmp_path / "runs" / "bad.ipynb").exists()
    run = nbformat.read(tmp_path / "runs" / "good.ipynb", as_version=4)
    printed = run.cells[2].outputs
    assert [o.output_type for o in printed] == ["stream"] and printed[0].text == "42\n"
    assert [c.execution_count for c in run.cells if c.cell_type == "code"] == [1, 2]


def test_a_value_silenced_by_a_semicolon_is_not_written(pages, tmp_path):
    """nbval's kernel ignores a trailing ';' (it runs cells without history); the page must not show it."""
    cells = ("x = 6 * 7\nx;", "x  # shown", "x;  # silenced, a comment after the semicolon", "print(x);")
    nbformat.write(_notebook(*cells), pages / "semicolons.ipynb")
    result = _run_nbval(pages, tmp_path / "runs")
    assert "4 passed" in result.stdout, result.stdout
    run = nbformat.read(tmp_path / "runs" / "semicolons.ipynb", as_version=4)
    kinds = [[o.output_type for o in c.outputs] for c in run.cells if c.cell_type == "code"]
    assert kinds == [[], ["execute_result"], [], ["stream"]]


def test_a_seed_shifted_run_is_not_written(pages, tmp_path):
    nbformat.write(_notebook("print(1)"), pages / "good.ipynb")
    result = _run_nbval(pages, tmp_path / "runs", SKIPFLOW_SEED_OFFSET="3")
    assert "1 passed" in result.stdout, result.stdout
    assert not (tmp_path / "runs" / "good.ipynb").exists()


def test_prime_stores_current_runs_and_leaves_out_stale_or_missing_ones(tmp_path):
    chapters, runs = tmp_path / "chapters", tmp_path / "runs"
    chapters.mkdir()
    runs.mkdir()
    for name in ("a", "b", "c"):
        nbformat.write(_notebook(f"print('{name}')"), chapters / f"{name}.ipynb")
    executed = _notebook("print('a')")
    executed.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="a\n")]
    nbformat.write(executed, runs / "a.ipynb")
    nbformat.write(_notebook("print('an older b')"), runs / "b.ipynb")
    left_out = reuse_runs.prime(runs, tmp_path / "cache", chapters)
    assert left_out == ["b.ipynb: edited since its nbval run", f"c.ipynb: no passing nbval run in {runs}"]
    from jupyter_cache import get_cache

    cache = get_cache(str(tmp_path / "cache"))
    _, merged = cache.merge_match_into_notebook(nbformat.read(chapters / "a.ipynb", as_version=4))
    assert merged.cells[1].outputs[0].text == "a\n"
    with pytest.raises(KeyError):
        cache.match_cache_notebook(nbformat.read(chapters / "b.ipynb", as_version=4))


def test_wait_returns_when_every_chapter_has_a_run_or_the_session_has_ended(tmp_path):
    chapters, runs = tmp_path / "chapters", tmp_path / "runs"
    chapters.mkdir()
    runs.mkdir()
    for name in ("a", "b"):
        nbformat.write(_notebook("print(1)"), chapters / f"{name}.ipynb")
    nbformat.write(_notebook("print(1)"), runs / "a.ipynb")
    assert reuse_runs.wait(runs, chapters, poll_s=0.01, timeout_s=0.05) == ["b.ipynb"]  # gave up waiting
    (runs / reuse_runs.SESSION_DONE).touch()  # the session ended without a passing run of b
    assert reuse_runs.wait(runs, chapters, poll_s=10, timeout_s=60) == ["b.ipynb"]  # at once, not after 10 s
    (runs / reuse_runs.SESSION_DONE).unlink()
    nbformat.write(_notebook("print(1)"), runs / "b.ipynb")
    assert reuse_runs.wait(runs, chapters, poll_s=10, timeout_s=60) == []
    with pytest.raises(ValueError, match="poll_s"):
        reuse_runs.wait(runs, chapters, poll_s=0)


def test_the_nbval_session_marks_its_end(pages, tmp_path):
    nbformat.write(_notebook("print(1)"), pages / "good.ipynb")
    _run_nbval(pages, tmp_path / "runs")
    assert (tmp_path / "runs" / reuse_runs.SESSION_DONE).is_file()
