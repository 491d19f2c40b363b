"""Simulate Colab: each chapter, copied alone into an empty folder, installs skipflow in its setup cell.

The kernel runs in a throw-away virtual environment that sees every package of .venv except skipflow (a
`.pth` file points at a folder of links to .venv's site-packages, minus skipflow's entries). So the setup cell
cannot import skipflow and finds no ../code: it must pip-install it. ``SKIPFLOW_INSTALL_SOURCE`` points that
install at this checkout instead of the repository URL, which is the only difference from real Colab: pip
builds the package from a copy of the checkout once per test process (`pip wheel`, the same build that
`pip install git+...` runs) and each chapter's setup cell installs that wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))
SITE = Path(sysconfig.get_paths()["purelib"])
COLAB_SEED_OFFSET = "1"  # nbval and the book use offset 0, the student edition 2

TOOLS = ROOT / "tools"
RUNNER = textwrap.dedent(
    """
    import sys, nbformat
    sys.path.insert(0, sys.argv[3])  # the repository's tools/, for the patient client
    from kernel_waits import PatientClient
    nb = nbformat.read(sys.argv[1], as_version=4)
    PatientClient(nb, kernel_name="python3", timeout=600,
                  resources={"metadata": {"path": sys.argv[2]}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    print("\\n".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream"))
    """
)


def site_without_skipflow(tmp: Path) -> Path:
    """A folder of links to .venv's site-packages entries, leaving out skipflow's."""
    farm = tmp / "site-links"
    farm.mkdir()
    for entry in SITE.iterdir():
        if "skipflow" in entry.name.lower():
            continue
        (farm / entry.name).symlink_to(entry)
    return farm


def package_source(tmp: Path) -> Path:
    """A copy of what `pip install <repository>` needs, so the build leaves the checkout untouched."""
    src = tmp / "repository"
    shutil.copytree(ROOT / "code", src / "code", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    return src


@pytest.fixture(scope="session")
def skipflow_wheel(tmp_path_factory) -> Path:
    """skipflow built from a copy of this checkout, as pip builds it for `pip install <repository>`."""
    tmp = tmp_path_factory.mktemp("skipflow-wheel")
    dist = tmp / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(dist),
            str(package_source(tmp)),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("skipflow-*.whl")
    return wheel


def colab_like_python(tmp: Path) -> Path:
    """A new virtual environment whose Python sees .venv's packages (not skipflow) and can pip install."""
    env = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    own_site = Path(
        subprocess.run(
            [str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # a .pth adds the folder to sys.path *after* the venv's own site-packages, where pip installs skipflow
    (own_site / "shared-packages.pth").write_text(str(site_without_skipflow(tmp)) + "\n")
    return env / "bin" / "python"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_alone_with_skipflow_installed_by_its_setup_cell(notebook, tmp_path, skipflow_wheel):
    python = colab_like_python(tmp_path)
    probe = subprocess.run(
        [str(python), "-c", "import importlib.util as u; print(u.find_spec('skipflow') is None)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "True", "the simulated Colab must start without skipflow"

    workdir = tmp_path / "content"  # Colab's working folder, with nothing but the notebook
    workdir.mkdir()
    shutil.copy(notebook, workdir / notebook.name)
    (tmp_path / "run.py").write_text(RUNNER)
    env = {
        **os.environ,
        "SKIPFLOW_INSTALL_SOURCE": str(skipflow_wheel),
        "SKIPFLOW_PROGRESS": "0",
        # the Colab run is also the first seed-shifted run: every hidden claim must hold for other seeds
        "SKIPFLOW_SEED_OFFSET": COLAB_SEED_OFFSET,
    }
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [
            str(python),
            str(tmp_path / "run.py"),
            str(workdir / notebook.name),
            str(workdir),
            str(TOOLS),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=900,
    )
    assert result.returncode == 0, f"{notebook.name} failed in the Colab simulation:\n{result.stderr[-4000:]}"
    assert "torch" in result.stdout  # the setup cell printed the environment line
    assert f"seeds shifted by {COLAB_SEED_OFFSET}" in result.stdout, "the run must really use other seeds"
    installed = subprocess.run(  # where `import skipflow` would load it from (without importing torch again)
        [
            str(python),
            "-c",
            "import importlib.util as u, pathlib; print(pathlib.Path(u.find_spec('skipflow').origin).parent)",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.strip()
    assert Path(installed).is_relative_to(tmp_path / "venv"), "skipflow should come from the new install"
    assert list(workdir.iterdir()) == [workdir / notebook.name], "notebooks must write no files"


def test_no_stray_files_in_chapters():
    allowed = {".ipynb"}
    config = {"ruff.toml"}  # formats the chapters' code for the book's column; not a notebook's output
    stray = [
        p.name
        for p in (ROOT / "chapters").iterdir()
        if p.is_file() and p.suffix not in allowed and p.name not in config
    ]
    assert stray == [], f"unexpected files in chapters/: {stray}"


@pytest.mark.slow
def test_setup_cell_uses_the_code_folder_of_a_plain_clone(tmp_path):
    """With nothing installed, a notebook in chapters/ of a clone imports skipflow from ../code."""
    python = colab_like_python(tmp_path)
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "code", clone / "code", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (clone / "chapters").mkdir()
    notebook = clone / "chapters" / "00_how_to_use.ipynb"
    shutil.copy(ROOT / "chapters" / notebook.name, notebook)
    (tmp_path / "run.py").write_text(RUNNER)
    env = {**os.environ, "SKIPFLOW_INSTALL_SOURCE": str(tmp_path / "missing"), "SKIPFLOW_PROGRESS": "0"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [str(python), str(tmp_path / "run.py"), str(notebook), str(notebook.parent), str(TOOLS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "torch" in result.stdout
    # nothing was installed: the kernel found the package through ../code
    still_missing = subprocess.run(
        [str(python), "-c", "import importlib.util as u; print(u.find_spec('skipflow') is None)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert still_missing.stdout.strip() == "True"
