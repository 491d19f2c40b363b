"""Showing numbers in the book and in Colab with the same notebook.

The book inserts measured numbers into sentences with myst-nb's ``glue``. Colab has no myst-nb, so
:func:`glue` falls back to printing the value: the same notebook runs in both places.
"""

from __future__ import annotations

import os

import torch

from skipflow.claims import reset as reset_ledger
from skipflow.plots import use_style
from skipflow.runtime import describe, set_threads


def glue(name: str, value: object, display: bool = False) -> object:
    """Make ``value`` available to the text as ``{glue:text}`name``` and return it unchanged.

    Tensors of one element become Python numbers so that format specs such as ``:.2f`` work. Outside the
    book build (no myst-nb) the value is printed as ``name = value``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"`name` must be a simple identifier such as 'ratio_20', got {name!r}.")
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    try:
        from myst_nb import glue as _myst_glue
    except ImportError:
        print(f"{name} = {value}")
    else:
        _myst_glue(name, value, display=display)
    return value


def glue_figure(name: str, fig: object) -> None:
    """Glue a matplotlib figure for a numbered ``{glue:figure}`` directive, rendering it only once.

    With myst-nb the figure is rendered once, shown under the cell (with the name the directive looks for)
    and closed, so the inline backend does not render it a second time at the end of the cell; tag the cell
    ``remove-output`` so the book shows it only in the numbered, captioned figure. Without myst-nb (Colab)
    nothing is glued and the figure is shown as usual. Returns nothing, so that a call on a cell's last line
    does not display the figure once more.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"`name` must be a simple identifier such as 'fig_flow', got {name!r}.")
    try:
        from myst_nb import glue as _myst_glue
    except ImportError:
        return
    import matplotlib.pyplot as plt

    _myst_glue(name, fig, display=True)
    plt.close(fig)


def setup_notebook() -> None:
    """Prepare a chapter: one CPU thread, inline figures, the course's style, an empty ledger; describe it.

    PyTorch runs on one CPU thread (``SKIPFLOW_THREADS`` overrides it). The course's models are tiny, so a
    second thread buys little, and with a fixed thread count the numbers a chapter measures do not depend
    on how many cores the reader's machine has: floating-point sums are accumulated in the same order.
    """
    set_threads(int(os.environ.get("SKIPFLOW_THREADS", "1")))
    _inline_figures()
    use_style()
    reset_ledger()
    print(describe())


def _inline_figures() -> None:
    """Inside a Jupyter kernel, draw figures inline even if ``MPLBACKEND`` names another backend.

    With ``MPLBACKEND=Agg`` in the environment (common on headless machines) the kernel would otherwise
    render nothing, and the book would silently lose every figure.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        import matplotlib

        matplotlib.use("module://matplotlib_inline.backend_inline")
