"""The repository's rules for notebooks, as functions that return a list of problems.

They live apart from the tests so that tests/test_hygiene.py can show each rule catching a broken notebook
(every hygiene check must be able to fail), and tools can reuse them.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from new_chapter import SETUP_CELL, SETUP_TAG  # noqa: E402

ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])(/(root|home|work|tmp|Users|mnt|opt)/|[A-Za-z]:\\\\)")
REPO_URL_IN_CELL = re.compile(r'REPO_URL = "([^"]+)"')


def config_repo_url(root: Path = ROOT) -> str:
    """The repository URL kept in _config.yml (the one place it is configured)."""
    return yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"]


def toc_files(root: Path = ROOT) -> list[str]:
    """Every `file:` entry of _toc.yml, plus its root page."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc.get("parts", toc.get("chapters", [])))
    return files


def source(cell: dict) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def notebook_problems(path: Path, toc: list[str], repo_url: str) -> list[str]:
    """Everything wrong with one notebook, as readable sentences (empty when it is clean)."""
    try:
        nb = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return [f"{path.name}: not readable JSON ({exc})"]
    problems = []
    cells = nb.get("cells", [])
    for i, cell in enumerate(cells):
        if cell.get("cell_type") == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(f"{path.name}: cell {i} has stored outputs; strip them before committing")
    kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"{path.name}: kernelspec is {kernel!r}, must be 'python3'")
    if not cells or source(cells[0]) != SETUP_CELL:
        problems.append(f"{path.name}: the first cell is not the standard setup cell (tools/new_chapter.py)")
    else:
        if SETUP_TAG not in cells[0].get("metadata", {}).get("tags", []):
            problems.append(
                f"{path.name}: the setup cell lacks the tag {SETUP_TAG!r} (it belongs above the title)"
            )
        match = REPO_URL_IN_CELL.search(source(cells[0]))
        if not match or match.group(1) != repo_url:
            problems.append(f"{path.name}: the setup cell's REPO_URL does not match _config.yml ({repo_url})")
    stem = f"{path.parent.name}/{path.stem}"
    if stem not in toc:
        problems.append(f"{path.name}: not listed in _toc.yml")
    for i, cell in enumerate(cells):
        if ABSOLUTE_PATH.search(source(cell)):
            problems.append(f"{path.name}: cell {i} contains an absolute path")
    problems += claim_problems(path.name, cells)
    problems += page_problems(path.name, cells)
    return problems


# Tags that keep a cell's input out of the book (its code is not what the reader reads there).
HIDDEN_INPUT = {"remove-input", "remove-cell", "hide-input", "hide-cell"}
HIDDEN_OUTPUT = {"remove-output", "remove-cell"}
MAX_READER_LINES = 20  # a reader-facing cell fits on a screen; longer code is split or folded
# The book's code column holds about 90 characters of 12-px code (_static/skipflow.css); chapters/ruff.toml
# formats to this width, but a long string or comment is not split by the formatter.
MAX_READER_COLUMNS = 88
GLUE_CALL = re.compile(r"\bskipflow\.glue\(")


def _tags(cell: dict) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def _shows_a_glued_value(text: str) -> bool:
    """The cell ends with `...glue(...)` without a `;`: the book would show the bare number under it."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr) or not isinstance(last.value, ast.Call):
        return False
    call = last.value.func
    name = call.attr if isinstance(call, ast.Attribute) else getattr(call, "id", "")
    if name != "glue":
        return False
    after = text.splitlines()[last.end_lineno - 1][last.end_col_offset :]
    return not after.lstrip().startswith(";")


def page_problems(name: str, cells: list[dict]) -> list[str]:
    """What the book page would show badly: long code a reader must read, bare glued numbers."""
    problems = []
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        text, tags = source(cell), _tags(cell)
        lines = len(text.rstrip().splitlines())
        if not tags & HIDDEN_INPUT and lines > MAX_READER_LINES:
            problems.append(
                f"{name}: cell {i} shows the reader {lines} lines of code (at most {MAX_READER_LINES}); "
                "split it, or move the book's machinery (glue, checks) into a hidden cell"
            )
        if not tags & HIDDEN_INPUT:
            wide = [n for n, line in enumerate(text.splitlines(), 1) if len(line) > MAX_READER_COLUMNS]
            if wide:
                problems.append(
                    f"{name}: cell {i} line(s) {wide} run past the book's code column "
                    f"({MAX_READER_COLUMNS} characters); shorten or split them"
                )
            if GLUE_CALL.search(text):
                problems.append(
                    f"{name}: cell {i} shows the reader the book's skipflow.glue calls; "
                    "move them into a following cell tagged 'remove-cell'"
                )
        if not tags & HIDDEN_OUTPUT and _shows_a_glued_value(text):
            problems.append(f"{name}: cell {i} ends with a glue call without ';' (its bare value is shown)")
    return problems


# A reference solution may assert that its own checker accepts it; every other check is a claim.
BARE_ASSERT = re.compile(r"^\s*assert\b(?!\s+skipflow\.checks\.)", re.MULTILINE)
# Seeding anywhere but skipflow.runtime would ignore SKIPFLOW_SEED_OFFSET.
DIRECT_SEED = re.compile(
    r"torch\.manual_seed\(|(?<!runtime)\.manual_seed\(|np\.random\.seed\(|(?<![\w.])random\.seed\(|default_rng\(|RandomState\("
)
LEDGER_CALL = "skipflow.claims.show_ledger()"
LEDGER_HEADING = "How this page checks itself"


def claim_problems(name: str, cells: list[dict]) -> list[str]:
    """Claims go through skipflow.claims, seeds through skipflow.runtime, and the page shows its ledger."""
    problems = []
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        text = source(cell)
        if BARE_ASSERT.search(text):
            problems.append(
                f"{name}: cell {i} has a bare assert; check claims with skipflow.claims.check_between/check"
            )
        if DIRECT_SEED.search(text):
            problems.append(
                f"{name}: cell {i} seeds directly; use skipflow.runtime.manual_seed/generator/seed_everything"
            )
    ledger = [i for i, c in enumerate(cells) if c.get("cell_type") == "code" and LEDGER_CALL in source(c)]
    if len(ledger) != 1:
        problems.append(f"{name}: needs exactly one cell calling {LEDGER_CALL} (found {len(ledger)})")
        return problems
    i = ledger[0]
    if "remove-input" not in cells[i].get("metadata", {}).get("tags", []):
        problems.append(f"{name}: the ledger cell must be tagged 'remove-input'")
    headings = [j for j, c in enumerate(cells[:i]) if c.get("cell_type") == "markdown"]
    if not headings or LEDGER_HEADING not in source(cells[headings[-1]]):
        problems.append(f"{name}: the ledger cell must follow a heading '{LEDGER_HEADING}'")
    later_checks = [j for j, c in enumerate(cells) if j > i and "skipflow.claims.check" in source(c)]
    if later_checks:
        problems.append(f"{name}: cells {later_checks} check claims after the ledger is shown")
    return problems


def text_file_problems(path: Path) -> list[str]:
    """Absolute paths in a config or text file."""
    return [
        f"{path.name}: line {n} contains an absolute path"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if ABSOLUTE_PATH.search(line)
    ]
