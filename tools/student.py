"""Write the student edition of the course: every chapter notebook without its solutions.

Each exercise keeps its statement, its stub cell and its checker cell; what lies between a
```{solution-start}`` directive and its ```{solution-end}`` (the worked answer in Markdown and the reference
code cells) is removed, as is any one-piece ```{solution}`` directive. Text that shares a Markdown cell with
the start or end of a solution block (the key takeaways after the last solution, say) is kept. Outputs are
cleared. Instructors can hand the result out; students can open it in Colab or Jupyter, where the checkers
answer "not solved yet" until the stubs are filled in.

Usage: python tools/student.py [--out _build/student] [chapters/01_foo.ipynb ...]
(default: every notebook in chapters/). The files written keep their names.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(?P<indent>[ ]{0,3})(?P<fence>`{3,}|:{3,})\s*\{(?P<name>[\w:-]+)\}")


class SolutionBlockError(ValueError):
    """A solution block that does not close, or closes without opening."""


def _closing(fence: str, line: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def strip_markdown(text: str, state: dict) -> str:
    """Remove solution text from one Markdown cell; ``state["inside"]`` carries over between cells."""
    kept: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        match = FENCE.match(line)
        name = match.group("name") if match else None
        if match and name in ("solution-start", "solution-end", "solution"):
            fence = match.group("fence")
            if name == "solution-start":
                if state["inside"]:
                    raise SolutionBlockError(
                        f"a solution-start inside another solution block: {line.strip()}"
                    )
                state["inside"] = True
            elif name == "solution-end":
                if not state["inside"]:
                    raise SolutionBlockError("a solution-end without a solution-start before it")
                state["inside"] = False
            # skip the directive itself, up to its closing fence
            i += 1
            while i < len(lines) and not _closing(fence, lines[i]):
                i += 1
            i += 1
            continue
        if not state["inside"]:
            kept.append(line)
        i += 1
    return "\n".join(kept).strip("\n")


def _same_id(new: nbformat.NotebookNode, old: nbformat.NotebookNode) -> nbformat.NotebookNode:
    if "id" in old:
        new["id"] = old["id"]
    return new


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with every solution block removed and outputs cleared."""
    out = nbformat.v4.new_notebook(metadata=dict(nb.metadata))
    out.metadata["skipflow"] = {**out.metadata.get("skipflow", {}), "edition": "student"}
    state = {"inside": False}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            text = strip_markdown(cell.source, state)
            if text.strip():
                new = nbformat.v4.new_markdown_cell(text, metadata=dict(cell.metadata))
                if "attachments" in cell:
                    new["attachments"] = cell["attachments"]
                out.cells.append(_same_id(new, cell))
        elif not state["inside"]:
            make = nbformat.v4.new_code_cell if cell.cell_type == "code" else nbformat.v4.new_raw_cell
            out.cells.append(_same_id(make(cell.source, metadata=dict(cell.metadata)), cell))
    if state["inside"]:
        raise SolutionBlockError("a solution-start has no solution-end after it")
    nbformat.validate(out)
    return out


def write_student_edition(notebooks: list[Path], out_dir: Path) -> list[Path]:
    """Write the student edition of each notebook into ``out_dir``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        try:
            student = student_notebook(nb)
        except SolutionBlockError as exc:
            raise SolutionBlockError(f"{path}: {exc}") from None
        target = out_dir / path.name
        nbformat.write(student, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "student")
    parser.add_argument("notebooks", type=Path, nargs="*")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "chapters").glob("*.ipynb"))
    try:
        written = write_student_edition(notebooks, args.out)
    except SolutionBlockError as exc:
        print(f"student edition: {exc}", file=sys.stderr)
        return 1
    print(f"student edition: {len(written)} notebooks in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
