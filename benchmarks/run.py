"""Measure the course's run times and write benchmarks/RESULTS.md.

Usage: .venv/bin/python benchmarks/run.py [--runs 3] [--skip-book] [--only 01_vanishing_gradients ...]

It measures, on this machine:
1. each notebook's execution time (nbclient, kernel start included; median of --runs runs);
2. the full book build (`jupyter-book build`, executing every notebook, into a temporary folder);
3. the overhead of skipflow's gradient probes over a plain forward/backward pass, as a ratio of medians
   measured in one run with interleaved repeats;
4. chapter 3's comparison of the exact path decomposition against Veit et al.'s sampling
   (benchmarks/bench_paths.py), when that file exists.

Then it rewrites RESULTS.md and the runtime column of the README's chapter table. Budgets (DESIGN.md):
each notebook <= 40 s, the whole book <= 5 min, `bash .ci/run` from a fresh clone on a bare machine
<= 8 min, `make test` with .venv present <= 5 min.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbclient
import nbformat
import torch

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_BUDGET_S = 40.0
BOOK_BUDGET_S = 300.0


def time_notebook(path: Path) -> float:
    """Seconds to execute one notebook from a fresh kernel, in its own folder."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    return time.perf_counter() - start


def time_book() -> float:
    """Seconds for a full `jupyter-book build` (every notebook executed) into a throw-away folder."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "jupyter-book"),
                "build",
                str(ROOT),
                "--path-output",
                out,
                "-W",
                "-n",
            ],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - start


CLEAN_TEST_HEADING = "## `make test` from a clean clone"


def time_clean_test() -> str:
    """Clone the repository into a temporary folder and time `make test` there, installs included."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["git", "clone", "-q", str(ROOT), tmp], check=True)
        start = time.perf_counter()
        result = subprocess.run(["make", "test"], cwd=tmp, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    verdict = "passed" if result.returncode == 0 else f"**failed** (exit {result.returncode})"
    return (
        f"`make test` in a fresh clone (creating .venv, installing everything, then every check) {verdict} "
        f"in {seconds / 60:.1f} min (budget 8 min), measured {dt.date.today().isoformat()}."
    )


def previous_clean_test() -> str:
    """The clean-clone section of the last RESULTS.md, kept when this run does not measure it."""
    results = ROOT / "benchmarks" / "RESULTS.md"
    if results.exists() and CLEAN_TEST_HEADING in results.read_text():
        return results.read_text().split(CLEAN_TEST_HEADING, 1)[1].split("\n## ", 1)[0].strip()
    return "Not measured yet: run `benchmarks/run.py --clean-test`."


def probe_overhead(repeats: int = 30) -> dict[str, float]:
    """Median time of a plain forward/backward vs. the same pass through each probe, interleaved."""
    sys.path.insert(0, str(ROOT / "code"))
    import skipflow

    torch.manual_seed(0)
    split = skipflow.data.load_digits()
    x, y = split.x_train[:256], split.y_train[:256]
    model = skipflow.models.residual_mlp(64, 10, 56, width=64)

    def plain() -> None:
        model.zero_grad(set_to_none=True)
        skipflow.probes.default_loss(model(x), y).backward()

    cases = {
        "plain backward": plain,
        "layer_grad_norms": lambda: skipflow.probes.layer_grad_norms(model, x, y),
        "stream_grad_norms": lambda: skipflow.probes.stream_grad_norms(model, x, y),
        "grad_to_weight_ratios": lambda: skipflow.probes.grad_to_weight_ratios(model, x, y),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()  # warm up
    names = list(cases)
    for rep in range(repeats):
        # interleaved, and the order rotates, so drifts in machine load hit every case alike
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            start = time.perf_counter()
            cases[name]()
            samples[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(s) for name, s in samples.items()}
    base = medians["plain backward"]
    return {name: m / base for name, m in medians.items()} | {"plain backward (ms)": base * 1e3}


def paths_comparison() -> str:
    """Chapter 3's exact-vs-sampling comparison, if its benchmark exists."""
    path = ROOT / "benchmarks" / "bench_paths.py"
    if not path.exists():
        return "_benchmarks/bench_paths.py is not there yet._"
    spec = importlib.util.spec_from_file_location("bench_paths", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.markdown(module.run())


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}; {os.cpu_count()} cores; Python {platform.python_version()}; torch {torch.__version__}; "
        f"torch threads {torch.get_num_threads()} here, 1 in the notebooks (setup_notebook); "
        f"{platform.system()} {platform.release()}"
    )


def update_readme(times: dict[str, float]) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    for stem, seconds in times.items():
        number = stem.split("_", 1)[0]
        pattern = re.compile(
            rf"^(\| {int(number)} \| \[.*\]\(chapters/{re.escape(stem)}\.ipynb\) \|.*\| )[^|]*( \|)$", re.M
        )
        text = pattern.sub(lambda m, s=seconds: f"{m.group(1)}{s:.0f} s{m.group(2)}", text)
    readme.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per notebook (median reported)")
    parser.add_argument("--skip-book", action="store_true", help="do not time the full book build")
    parser.add_argument("--only", nargs="*", help="notebook stems to time (default: all)")
    parser.add_argument("--clean-test", action="store_true", help="also time `make test` in a fresh clone")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    os.environ.setdefault("SKIPFLOW_PROGRESS", "0")

    notebooks = sorted((ROOT / "chapters").glob("*.ipynb"))
    if args.only:
        notebooks = [p for p in notebooks if p.stem in args.only]
    times: dict[str, float] = {}
    rows = []
    for path in notebooks:
        runs = [time_notebook(path) for _ in range(args.runs)]
        times[path.stem] = statistics.median(runs)
        verdict = "ok" if times[path.stem] <= NOTEBOOK_BUDGET_S else "**over budget**"
        spread = ", ".join(f"{r:.1f}" for r in runs)
        rows.append(f"| {path.stem} | {times[path.stem]:.1f} | {spread} | {verdict} |")
        print(rows[-1], flush=True)

    book = None if args.skip_book else time_book()
    clean_test = time_clean_test() if args.clean_test else previous_clean_test()
    overhead = probe_overhead()
    paths = paths_comparison()

    lines = [
        "# Benchmarks",
        "",
        f"Measured {dt.date.today().isoformat()} by `benchmarks/run.py` on: {machine()}.",
        "",
        "## Notebook execution time",
        "",
        f"Budget: {NOTEBOOK_BUDGET_S:.0f} s per notebook. Fresh kernel per run, kernel start included; "
        f"median of {args.runs} runs.",
        "",
        "| notebook | median (s) | runs (s) | budget |",
        "|---|---|---|---|",
        *rows,
        f"| **sum** | {sum(times.values()):.1f} | | |",
        "",
        "## Full book build",
        "",
        (
            f"`jupyter-book build . -W -n` executing every notebook: {book:.0f} s "
            f"(budget {BOOK_BUDGET_S:.0f} s: {'ok' if book <= BOOK_BUDGET_S else '**over budget**'})."
            if book is not None
            else "Not measured in this run (`--skip-book`)."
        ),
        "",
        CLEAN_TEST_HEADING,
        "",
        clean_test,
        "",
        "## Overhead of the gradient probes",
        "",
        "Time of each probe divided by the time of a plain forward + backward pass of the same model "
        "(a 56-layer residual MLP, width 64, batch 256), medians of 30 interleaved repeats, one run:",
        "",
        *[f"- {name}: {value:.2f}" for name, value in overhead.items()],
        "",
        "## Chapter 3: exact path decomposition vs. sampling, on equal terms",
        "",
        paths,
        "",
    ]
    (ROOT / "benchmarks" / "RESULTS.md").write_text("\n".join(lines))
    if not args.only:
        update_readme(times)
    print("wrote benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
