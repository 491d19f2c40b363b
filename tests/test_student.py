"""The student edition (`make student`, tools/student.py): solutions out, exercises in, and it runs.

- the stripping rules, on a small notebook with every layout the chapters use;
- for every chapter: no solution text leaks (no solution directive, no line of a reference solution or of
  its worked answer), and every other code cell (stubs and checkers included) is kept, in order;
- for every chapter (slow): the student notebook executes without error, each checker answers "not solved
  yet" and none crashes.

The leak check finds the solution blocks on its own, cell by cell, instead of reusing tools/student.py, so
a bug in the tool cannot hide itself.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from student import SolutionBlockError, student_notebook, write_student_edition  # noqa: E402

CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
STUDENT_SEED_OFFSET = "2"
IDS = [path.stem for path in CHAPTERS]
CHECKER_CALL = re.compile(r"skipflow\.checks\.\w+\(")
NOT_SOLVED = "not solved yet"
CRASH_MARKERS = ("the checker itself failed", "your code raised", "Traceback")


def _notebook(*cells: tuple[str, str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    make = {"md": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    nb.cells = [make[kind](source) for kind, source in cells]
    return nb


def test_strips_every_solution_layout() -> None:
    nb = _notebook(
        ("code", "setup()"),
        ("md", "## Exercises\n\n```{exercise-start}\n:label: ex-a\n```\nDo A.\n```{exercise-end}\n```"),
        ("code", "def a():\n    return None"),
        ("code", "skipflow.checks.a(a);"),
        ("md", "Before the solution.\n\n```{solution-start} ex-a\n:class: dropdown\n```\n\nWorked answer A."),
        ("code", "def a():\n    return 42  # reference"),
        ("md", "More of the answer."),
        ("code", "assert skipflow.checks.a(a)"),
        ("md", "```{solution-end}\n```\n\n## Key takeaways\n\n- kept"),
        (
            "md",
            ":::{solution-start} ex-b\n:class: dropdown\n:::\nAnswer B.\n:::{solution-end}\n:::\nAfter B.",
        ),
        (
            "md",
            "````{solution} ex-c\n:class: dropdown\nAnswer C with code:\n```python\nc = 3\n```\n````\nEnd.",
        ),
    )
    out = student_notebook(nb)
    sources = [(cell.cell_type, cell.source) for cell in out.cells]
    assert sources == [
        ("code", "setup()"),
        ("markdown", nb.cells[1].source),
        ("code", "def a():\n    return None"),
        ("code", "skipflow.checks.a(a);"),
        ("markdown", "Before the solution."),
        ("markdown", "## Key takeaways\n\n- kept"),
        ("markdown", "After B."),
        ("markdown", "End."),
    ]
    assert all(cell.get("outputs", []) == [] for cell in out.cells)
    assert out.metadata["skipflow"]["edition"] == "student"
    nbformat.validate(out)


@pytest.mark.parametrize(
    "cells",
    [
        [("md", "```{solution-start} ex\n```\nanswer")],  # never closed
        [("md", "```{solution-end}\n```")],  # closed, never opened
        [("md", "```{solution-start} a\n```"), ("md", "```{solution-start} b\n```")],  # nested
    ],
    ids=["unclosed", "unopened", "nested"],
)
def test_malformed_blocks_are_errors(cells) -> None:
    with pytest.raises(SolutionBlockError):
        student_notebook(_notebook(*cells))


def solution_parts(nb: nbformat.NotebookNode) -> dict[str, list[str]]:
    """Split a chapter cell by cell into solution code lines, solution prose lines, the code cells kept,
    and the lines of everything kept."""
    parts: dict[str, list[str]] = {"code": [], "prose": [], "kept_code": [], "kept_lines": []}
    inside = False
    for cell in nb.cells:
        lines = cell.source.split("\n")
        if cell.cell_type == "markdown":
            for line in lines:
                if "{solution-start}" in line:
                    inside = True
                elif "{solution-end}" in line:
                    inside = False
                elif inside and line.strip() and not line.strip().startswith((":", "```")):
                    parts["prose"].append(line.strip())
                elif not inside:
                    parts["kept_lines"].append(line.strip())
        elif inside:
            parts["code"] += [line.strip() for line in lines if line.strip()]
        else:
            parts["kept_code"].append(cell.source)
            parts["kept_lines"] += [line.strip() for line in lines]
    return parts


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student")
    write_student_edition(CHAPTERS, out)
    return out


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_no_solution_leaks(student_dir: Path, chapter: Path) -> None:
    original = nbformat.read(chapter, as_version=4)
    student = nbformat.read(student_dir / chapter.name, as_version=4)
    parts = solution_parts(original)
    kept = set(parts["kept_lines"])
    student_lines = {line.strip() for cell in student.cells for line in cell.source.split("\n")}
    student_text = "\n".join(cell.source for cell in student.cells)

    for directive in ("{solution-start}", "{solution-end}", "{solution}"):
        assert directive not in student_text, f"{chapter.name}: {directive} left in the student edition"
    # A line of a solution may also appear outside it (the stub's `def` line, a `$$`): those are not leaks.
    leaked = [line for line in parts["code"] if line not in kept and line in student_lines]
    assert not leaked, f"{chapter.name}: reference-solution code in the student edition: {leaked[:5]}"
    leaked_prose = [line for line in parts["prose"] if line not in kept and line in student_lines]
    assert not leaked_prose, f"{chapter.name}: worked-answer text in the student edition: {leaked_prose[:3]}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_exercises_and_checkers_kept(student_dir: Path, chapter: Path) -> None:
    original = nbformat.read(chapter, as_version=4)
    student = nbformat.read(student_dir / chapter.name, as_version=4)
    student_code = [cell.source for cell in student.cells if cell.cell_type == "code"]
    assert student_code == solution_parts(original)["kept_code"], (
        f"{chapter.name}: the code outside the solutions changed"
    )
    count = "\n".join(c.source for c in original.cells if c.cell_type == "markdown").count("{exercise-start}")
    assert "\n".join(c.source for c in student.cells).count("{exercise-start}") == count
    assert student.cells[0].source == original.cells[0].source, "the setup cell must stay first"


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_student_notebook_runs(student_dir: Path, chapter: Path, monkeypatch) -> None:
    """Execute the student notebook as a reader would (from chapters/, so ../code is found)."""
    from kernel_waits import PatientClient as NotebookClient  # nbclient's client, robust to a lost wake-up

    monkeypatch.setenv("SKIPFLOW_PROGRESS", "0")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # the student run is also the second seed-shifted run (nbval and the book use 0, the Colab run 1)
    monkeypatch.setenv("SKIPFLOW_SEED_OFFSET", STUDENT_SEED_OFFSET)
    nb = nbformat.read(student_dir / chapter.name, as_version=4)
    NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(ROOT / "chapters")}}
    ).execute()  # raises CellExecutionError, with the cell and traceback, if any cell fails

    first = "".join(o.get("text", "") for o in nb.cells[0].get("outputs", []))
    assert f"seeds shifted by {STUDENT_SEED_OFFSET}" in first, "the run must really use other seeds"
    problems = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        text = "".join(
            out.get("text", "") for out in cell.get("outputs", []) if out.get("output_type") == "stream"
        )
        head = cell.source.strip().split("\n")[0][:60]
        if CHECKER_CALL.search(cell.source) and NOT_SOLVED not in text:
            problems.append(f"checker cell `{head}` did not say {NOT_SOLVED!r}; it printed: {text.strip()!r}")
        for marker in CRASH_MARKERS:
            if marker in text:
                problems.append(f"cell `{head}` printed {marker!r}: {text.strip()[:300]!r}")
    assert not problems, f"{chapter.name}:\n  " + "\n  ".join(problems)
