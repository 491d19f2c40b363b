"""Run a chapter at several seed offsets and tabulate every claim of its ledger, offset by offset.

A chapter's checks state tolerances with a reason ("offsets 0-5 gave 0.45-0.66"). This tool measures that
reason: it executes the notebook once per ``SKIPFLOW_SEED_OFFSET``, collects the ledger (claim, measured
value, condition) after each run, and prints one Markdown table with a column per offset. A run that stops
at a failing claim shows the failure in its column, so a knife-edge claim is easy to spot.

    .venv/bin/python tools/seed_sweep.py chapters/02_residual_math.ipynb --offsets 0 1 2 3 4 5

With ``--keep-going`` a failing claim is recorded as ``FAIL <value>`` and the run goes on, so one sweep
lists every claim a change breaks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import nbformat
from kernel_waits import PatientClient
from nbclient.exceptions import CellExecutionError

# With --keep-going, this cell runs right after the setup cell: a claim that fails is recorded with its value
# marked FAIL, and the run goes on, so one sweep shows every claim that fails rather than only the first.
_KEEP_GOING = """
import dataclasses as _dataclasses
import skipflow.claims as _claims

_check = _claims.check


def _check_and_go_on(claim, holds, **kwargs):
    try:
        _check(claim, holds, **kwargs)
    except _claims.ClaimFailed:
        row = _claims._LEDGER[claim]
        _claims._LEDGER[claim] = _dataclasses.replace(row, value="FAIL " + row.value)


_claims.check = _check_and_go_on
"""

_DUMP = (
    "import json, skipflow\n"
    "print('LEDGER' + json.dumps([[r.claim, r.value, r.condition] for r in skipflow.claims.ledger()]))"
)


def run_once(
    path: Path, offset: int, timeout: int = 600, keep_going: bool = False
) -> tuple[dict[str, tuple[str, str]], str | None]:
    """Execute ``path`` at one seed offset; return {claim: (value, condition)} and the failure, if any.

    With ``keep_going`` a failing claim does not stop the run: its value is marked ``FAIL``.
    """
    nb = nbformat.read(path, as_version=4)
    if keep_going:
        nb.cells.insert(1, nbformat.v4.new_code_cell(_KEEP_GOING))
    nb.cells.append(nbformat.v4.new_code_cell(_DUMP))
    client = PatientClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    failure = None
    saved = {name: os.environ.get(name) for name in ("SKIPFLOW_SEED_OFFSET", "SKIPFLOW_PROGRESS")}
    os.environ["SKIPFLOW_SEED_OFFSET"] = str(offset)  # the kernel inherits this process's environment
    os.environ.setdefault("SKIPFLOW_PROGRESS", "0")
    try:
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells[:-1]):
                try:
                    client.execute_cell(cell, index)
                except CellExecutionError as error:
                    failure = str(error).strip().splitlines()[-1][:300]
                    break
            client.execute_cell(nb.cells[-1], len(nb.cells) - 1)  # the ledger as far as the run got
    finally:
        for name, value in saved.items():  # leave the caller's environment as it was
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    rows = json.loads(text.split("LEDGER", 1)[1]) if "LEDGER" in text else []
    return {claim: (value, condition) for claim, value, condition in rows}, failure


def sweep(path: Path, offsets: list[int], keep_going: bool = False) -> str:
    """The Markdown table of every claim's measured value at each offset (``FAIL`` marks a failed claim
    when ``keep_going`` let the run go on past it)."""
    runs = {}
    for offset in offsets:
        print(f"{path.name}: offset {offset} ...", file=sys.stderr, flush=True)
        runs[offset] = run_once(path, offset, keep_going=keep_going)
    claims = list(dict.fromkeys(c for ledger, _ in runs.values() for c in ledger))
    head = "| claim | condition | " + " | ".join(f"offset {k}" for k in offsets) + " |"
    lines = [head, "|" + "---|" * (len(offsets) + 2)]
    for claim in claims:
        condition = next(runs[k][0][claim][1] for k in offsets if claim in runs[k][0])
        values = [runs[k][0].get(claim, ("—", ""))[0] for k in offsets]
        lines.append(f"| {claim} | {condition} | " + " | ".join(values) + " |")
    for k in offsets:
        if runs[k][1]:
            lines.append(f"\n**offset {k} stopped:** {runs[k][1]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", type=Path, nargs="+")
    parser.add_argument("--offsets", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument(
        "--keep-going", action="store_true", help="record a failing claim as FAIL and run on past it"
    )
    args = parser.parse_args(argv)
    failed = False
    for path in args.notebooks:
        table = sweep(path.resolve(), args.offsets, keep_going=args.keep_going)
        print(f"\n## {path.name}\n\n{table}")
        failed |= "stopped:**" in table or "| FAIL " in table
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
