"""Repository-wide pytest hooks: nbval's run of a chapter can also serve as the strict build's run.

``make test`` executes every chapter under nbval with the same seeds and settings that the book build uses.
With ``SKIPFLOW_EXECUTED_DIR`` set, each chapter whose every cell passed under nbval is written there with
the outputs nbval received from the kernel, and ``tools/reuse_runs.py`` hands those notebooks to the build,
which renders them instead of executing each chapter a second time for the same purpose. A chapter with a
failing cell is not written, so the build can never show outputs of a run that failed.

nbval's kernel is also nudged while a cell runs (tools/nudge.py), so a kernel that missed a request's wake-up
cannot stall the test run.
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "tools"))
from nudge import nudging_await_reply

try:
    from nbval.kernel import RunningKernel
except ImportError:  # nbval is optional for the unit tests
    RunningKernel = None
if RunningKernel is not None and not getattr(RunningKernel.await_reply, "nudges", False):
    RunningKernel.await_reply = nudging_await_reply(RunningKernel.await_reply)
    RunningKernel.await_reply.nudges = True

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


def _write_atomically(nb: nbformat.NotebookNode, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=destination.parent, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        nbformat.write(nb, stream)
    os.chmod(temporary, 0o644)
    os.replace(temporary, destination)
