"""Create a new chapter notebook with the standard setup cell and page skeleton.

Usage: python tools/new_chapter.py chapters/06_my_topic.ipynb "My topic"

The setup cell below is the one every chapter starts with; tests/test_hygiene.py checks that each notebook's
first cell is exactly this text and that REPO_URL matches `repository.url` in _config.yml. Then add the new
file to _toc.yml.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

SETUP_CELL = """\
# Setup (the same in every chapter): make `skipflow` importable, then describe the environment.
import importlib
import os
import subprocess
import sys
from pathlib import Path

REPO_URL = "https://github.com/skipflow-course/residual-connections"  # see _config.yml
if importlib.util.find_spec("skipflow") is None:
    code = Path("..") / "code"
    if (code / "skipflow").is_dir():  # a plain clone: use the code next door
        sys.path.insert(0, str(code.resolve()))
    else:  # Colab, or a notebook downloaded alone: install from the repository
        source = os.environ.get("SKIPFLOW_INSTALL_SOURCE", f"git+{REPO_URL}")
        pip = [sys.executable, "-m", "pip", "install", "-q", source]
        subprocess.run(pip, check=True)
        importlib.invalidate_caches()
import skipflow

skipflow.setup_notebook()"""

SETUP_TAG = "remove-cell"

SKELETON = [
    ("markdown", "# {title}\n\n```{{admonition}} Learning objectives\n- ...\n```"),
    ("markdown", "## Key takeaways\n\n- ..."),
    ("markdown", "## Exercises\n\n..."),
    ("markdown", "## References\n\n```{{footbibliography}}\n```"),
]


def new_notebook(title: str) -> nbformat.NotebookNode:
    """A notebook holding the setup cell and an empty page skeleton."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    setup = nbformat.v4.new_code_cell(SETUP_CELL)
    setup.metadata["tags"] = [SETUP_TAG]  # runs everywhere, but the HTML page starts with its title
    nb.cells.append(setup)
    for kind, text in SKELETON:
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(make(text.format(title=title)))
    return nb


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__)
        return 2
    path, title = Path(argv[1]), argv[2]
    if path.exists():
        print(f"{path} exists already; not overwriting it.")
        return 1
    nbformat.write(new_notebook(title), path)
    print(f"wrote {path}; now add it to _toc.yml")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
