"""Hand nbval's runs of the chapters to the book build, so ``make test`` executes each chapter once for both.

nbval (with ``SKIPFLOW_EXECUTED_DIR`` set, see ``conftest.py``) writes every chapter whose cells all passed,
with its outputs. ``prime`` checks that each written notebook has exactly the code of the chapter it ran
(so a chapter edited after the run is not shown with stale outputs) and stores it in a jupyter-cache, the
store myst-nb reads in ``execute_notebooks: cache`` mode. A chapter missing from the folder, or stale, is
left out of the cache, and the build then executes it itself: the result is never worse than a plain build.

    python tools/reuse_runs.py prime _build/executed _build/jupyter_cache

``wait`` lets ``make test`` start the build while the rest of the suite still runs: it returns once every
chapter has a run in the folder, or once the nbval session has ended (``conftest.py`` then writes
``SESSION_DONE`` there, and a chapter still missing is executed by the build).

    python tools/reuse_runs.py wait _build/executed
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn

ROOT = Path(__file__).resolve().parent.parent
SESSION_DONE = ".session-done"  # written into the folder when the pytest session that fills it has ended


def code_of(nb: nbformat.NotebookNode) -> list[str]:
    """The source of every code cell, in order: what a run of the notebook depends on."""
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def prime(executed: Path, cache_dir: Path, chapters: Path = ROOT / "chapters") -> list[str]:
    """Store each up-to-date executed chapter in the jupyter-cache at ``cache_dir``; return those left out."""
    cache = get_cache(str(cache_dir))
    cache.clear_cache()  # only this run's notebooks: nothing from an earlier run can be matched
    left_out = []
    for source in sorted(chapters.glob("*.ipynb")):
        run = executed / source.name
        if not run.is_file():
            left_out.append(f"{source.name}: no passing nbval run in {executed}")
            continue
        nb = nbformat.read(run, as_version=4)
        if code_of(nb) != code_of(nbformat.read(source, as_version=4)):
            left_out.append(f"{source.name}: edited since its nbval run")
            continue
        bundle = CacheBundleIn(nb, str(source.resolve()))
        cache.cache_notebook_bundle(bundle, check_validity=False, overwrite=True)
    return left_out


def wait(
    executed: Path, chapters: Path = ROOT / "chapters", poll_s: float = 1.0, timeout_s: float = 3600
) -> list[str]:
    """Wait until every chapter has a run in ``executed``, or the session has ended; return those missing."""
    if poll_s <= 0 or timeout_s <= 0:
        raise ValueError(f"`poll_s` and `timeout_s` must be positive, got {poll_s} and {timeout_s}.")
    deadline = time.monotonic() + timeout_s
    while True:
        missing = [p.name for p in sorted(chapters.glob("*.ipynb")) if not (executed / p.name).is_file()]
        if not missing or (executed / SESSION_DONE).is_file() or time.monotonic() > deadline:
            return missing
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("prime", help="store the executed chapters in a jupyter-cache for the build")
    cmd.add_argument("executed", type=Path)
    cmd.add_argument("cache", type=Path)
    cmd = sub.add_parser("wait", help="wait for every chapter's run, or for the end of the nbval session")
    cmd.add_argument("executed", type=Path)
    args = parser.parse_args(argv)
    if args.command == "wait":
        missing = wait(args.executed)
        without = f"; the build executes those without one: {', '.join(missing)}" if missing else ""
        print(f"reuse_runs: nbval has run the chapters{without}")
        return 0
    left_out = prime(args.executed, args.cache)
    for line in left_out:
        print(f"reuse_runs: the build will execute {line}", file=sys.stderr)
    n = len(list((ROOT / "chapters").glob("*.ipynb"))) - len(left_out)
    print(f"reuse_runs: {n} chapter run(s) from {args.executed} stored in {args.cache}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
