"""Repository-wide pytest hooks: nbval's run of a chapter can also serve as the strict build's run.

``make test`` executes every chapter under nbval with the same seeds and settings that the book build uses.
With ``SKIPFLOW_EXECUTED_DIR`` set, each chapter whose every cell passed under nbval is written there with
the outputs nbval received from the kernel, and ``tools/reuse_runs.py`` hands those notebooks to the build,
which renders them instead of executing each chapter a second time for the same purpose. A chapter with a
failing cell is not written, so the build can never show outputs of a run that failed.

The hooks also share the suite's work between its two xdist workers, heaviest first (see ``_unit``).
"""

from __future__ import annotations

import copy
import io
import os
import tempfile
import tokenize
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
        shown = outputs[number]
        if _ends_with_semicolon(cell.source):  # what Jupyter shows: no value under a cell ending in ";"
            shown = [o for o in shown if o.get("output_type") != "execute_result"]
        cell.outputs = [nbformat.from_dict(o) for o in shown]
        cell.execution_count = number + 1
    _write_atomically(nb, Path(target) / Path(path).name)


# How `make test`'s two xdist workers share the suite (`--dist loadscope --no-loadscope-reorder`). A
# scheduling unit goes to one worker whole: a notebook under nbval (its cells share one kernel, in order), one
# chapter's Colab or student-edition run, or a test file. Units are handed out longest first, so that
# neither worker is left with a long run at the end: the Colab runs (~30 s each, with a pip install) and the
# student-edition runs (~25 s), then the notebooks under nbval (~25 s), then the test files (seconds each).
# nbval comes last of the chapter runs because `make test` starts the book build and the browser test as
# soon as nbval has run every chapter: what still runs beside them is only the unit tests, so no chapter's
# timing measurement shares the cores with the build. xdist's own `loadgroup` does not work with pytest 9.2
# (pytest-dev/pytest-xdist#1386), hence this scheduler.
_ONE_RUN_EACH = {  # node-id prefix of a test that executes one chapter -> rank
    "tests/test_colab.py::test_notebook_runs_alone_with_skipflow_installed_by_its_setup_cell[": 0,
    "tests/test_student.py::test_student_notebook_runs[": 1,
}
_NBVAL_RANK, _FILE_RANK = 2, 3


def _unit(nodeid: str) -> tuple[int, str]:
    """(rank, scheduling unit) of the test `nodeid`."""
    path = nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        return _NBVAL_RANK, path
    for prefix, rank in _ONE_RUN_EACH.items():
        if nodeid.startswith(prefix):
            return rank, nodeid
    return _FILE_RANK, path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Heaviest units first (the sort is stable: cells and tests keep their order within a rank)."""
    items.sort(key=lambda item: _unit(item.nodeid)[0])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class HeaviestFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)[1]

    return HeaviestFirst(config, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Tell `tools/reuse_runs.py wait` that no more chapter runs will be written (controller process only)."""
    target = os.environ.get(_EXECUTED_DIR)
    if target and not hasattr(session.config, "workerinput"):
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / ".session-done").touch()  # tools/reuse_runs.SESSION_DONE


def _ends_with_semicolon(source: str) -> bool:
    """IPython's rule for a cell whose value is not displayed: its last token is ";".

    nbval runs each cell with ``store_history=False``, and IPython then checks the *previous* cell for the
    semicolon, so nbval's run of ``skipflow.glue("x", v);`` carries ``v`` as a displayed value. Dropping it
    here gives the page what Jupyter, Colab and the build's own execution show.
    """
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return False
    skip = {tokenize.ENDMARKER, tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT}
    last = next((t for t in reversed(tokens) if t.type not in skip), None)
    return last is not None and last.type == tokenize.OP and last.string == ";"


def _write_atomically(nb: nbformat.NotebookNode, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=destination.parent, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        nbformat.write(nb, stream)
    os.chmod(temporary, 0o644)
    os.replace(temporary, destination)
