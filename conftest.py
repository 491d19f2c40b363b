"""Repository-wide pytest hooks: nbval's run of a chapter can also serve as the strict build's run.

``make test`` executes every chapter under nbval with the same seeds and settings that the book build uses.
With ``SKIPFLOW_EXECUTED_DIR`` set, each chapter whose every cell passed under nbval is written there with
the outputs nbval received from the kernel, and ``tools/reuse_runs.py`` hands those notebooks to the build,
which renders them instead of executing each chapter a second time for the same purpose. A chapter with a
failing cell is not written, so the build can never show outputs of a run that failed.

The hooks also order the suite's work for its two xdist workers, heaviest first (see ``_schedule``).
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import nbformat
import pytest

_EXECUTED_DIR = "SKIPFLOW_EXECUTED_DIR"
_outputs: dict[str, dict[int, list]] = {}  # notebook path -> code-cell number -> outputs
_failed: set[str] = set()


def _is_nbval_cell(item: pytest.Item) -> bool:
    return hasattr(item, "cell_num") and hasattr(item, "test_outputs")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    if not os.environ.get(_EXECUTED_DIR) or not _is_nbval_cell(item):
        return
    report = outcome.get_result()
    path = str(item.parent.fspath)
    if report.failed or report.skipped:
        _failed.add(path)
    elif call.when == "call":
        _outputs.setdefault(path, {})[item.cell_num] = list(item.test_outputs or [])


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    target = os.environ.get(_EXECUTED_DIR)
    if os.environ.get("SKIPFLOW_SEED_OFFSET", "0").strip() not in ("", "0"):
        return  # the book shows the runs with the seeds as written, never a seed-shifted one
    if not target or not _is_nbval_cell(item) or (nextitem is not None and nextitem.parent is item.parent):
        return
    path = str(item.parent.fspath)  # the notebook's last cell has run: write it if every cell passed
    outputs = _outputs.pop(path, {})
    if path in _failed:
        return
    nb = copy.deepcopy(item.parent.nb)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    if len(outputs) != len(code_cells):
        return  # a cell was skipped or never ran: this is not a whole run of the chapter
    for number, cell in enumerate(code_cells):
        cell.outputs = [nbformat.from_dict(o) for o in outputs[number]]
        cell.execution_count = number + 1
    _write_atomically(nb, Path(target) / Path(path).name)


# The order in which `make test`'s two workers get their work (`--dist loadgroup --no-loadscope-reorder`
# hands out groups in collection order). Longest first, so that neither worker is left with a long run at
# the end: a Colab simulation (a chapter plus a pip install, ~40 s), a notebook under nbval (~30 s), a
# student-edition run or another one-notebook test (~25 s), then the unit tests (seconds each).
_RANK_OF_SLOW_FILE = {"test_colab.py": 0}
_NBVAL_RANK, _SLOW_RANK, _UNIT_RANK = 1, 2, 3


def _schedule(item: pytest.Item) -> tuple[int, str]:
    """(rank, xdist group) of a test: a notebook under nbval is one group (its cells share one kernel, in
    order); a slow test, one notebook execution, is a group of its own; any other test file is one group."""
    path = Path(str(item.fspath))
    if _is_nbval_cell(item):
        return _NBVAL_RANK, str(path)
    if item.get_closest_marker("slow") is not None:
        return _RANK_OF_SLOW_FILE.get(path.name, _SLOW_RANK), item.nodeid.replace("[", "(").replace("]", ")")
    return _UNIT_RANK, str(path)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ranked = sorted(
        enumerate(items), key=lambda pair: (_schedule(pair[1])[0], pair[0])
    )  # stable within a rank
    items[:] = [item for _, item in ranked]
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_schedule(item)[1]))


def _write_atomically(nb: nbformat.NotebookNode, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=destination.parent, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        nbformat.write(nb, stream)
    os.chmod(temporary, 0o644)
    os.replace(temporary, destination)
