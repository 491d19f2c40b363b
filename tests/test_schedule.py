"""The suite's scheduling units (root conftest.py): what runs together, and what is handed out first."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
root_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(root_conftest)


def test_a_notebook_is_one_unit_and_a_chapter_run_is_its_own():
    unit = root_conftest._unit
    notebook = "chapters/03_x.ipynb"
    assert unit(f"{notebook}::Cell 0")[1] == unit(f"{notebook}::Cell 41")[1] == notebook
    colab = "tests/test_colab.py::test_notebook_runs_alone_with_skipflow_installed_by_its_setup_cell"
    assert unit(f"{colab}[01_a]")[1] != unit(f"{colab}[02_b]")[1]
    assert unit("tests/test_models.py::test_a")[1] == unit("tests/test_models.py::test_b[1]")[1]


def test_heaviest_units_come_first():
    ranks = [
        root_conftest._unit(nodeid)[0]
        for nodeid in (
            "tests/test_colab.py::test_notebook_runs_alone_with_skipflow_installed_by_its_setup_cell[01_a]",
            "tests/test_student.py::test_student_notebook_runs[01_a]",
            "chapters/01_a.ipynb::Cell 0",  # last of the chapter runs: the build starts once nbval is done
            "tests/test_models.py::test_a",
        )
    ]
    assert ranks == sorted(ranks) and len(set(ranks)) == 4


def test_each_one_run_prefix_names_a_real_test():
    """A renamed test would silently fall back to its file's unit: the prefixes must match real tests."""
    for prefix in root_conftest._ONE_RUN_EACH:
        path, name = re.fullmatch(r"(.+?)::(\w+)\[", prefix).groups()
        assert re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M), prefix
