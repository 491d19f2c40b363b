"""skipflow: the small, tested library behind the course *Residual Connections & Gradient Flow*.

Each module holds one concept, so a reader can open the file that a chapter talks about:

- :mod:`skipflow.runtime`  seeding, device choice, Colab/CI detection
- :mod:`skipflow.data`     sklearn's bundled digits and synthetic tasks (no downloads)
- :mod:`skipflow.blocks`   plain layers and residual blocks
- :mod:`skipflow.models`   plain and residual MLPs built from those blocks
- :mod:`skipflow.probes`   gradient norms, activation statistics, Jacobians
- :mod:`skipflow.train`    a small explicit training loop that returns a history
- :mod:`skipflow.optim`    SGD with momentum and Adam, written out
- :mod:`skipflow.plots`    matplotlib helpers with one consistent style
- :mod:`skipflow.display`  ``glue`` that also works outside the book build (Colab), and ``table``
- :mod:`skipflow.checks`   exercise checkers, one function per exercise
- :mod:`skipflow.claims`   claims that check themselves, and the ledger each chapter shows
- :mod:`skipflow.widgets`  ipywidgets explorers
"""

from __future__ import annotations

__version__ = "0.1.0"

from skipflow import blocks, checks, claims, data, display, models, plots, probes, runtime, train, widgets
from skipflow.display import glue, setup_notebook, table

__all__ = [
    "__version__",
    "blocks",
    "checks",
    "claims",
    "data",
    "display",
    "glue",
    "models",
    "plots",
    "probes",
    "runtime",
    "setup_notebook",
    "table",
    "train",
    "widgets",
]
