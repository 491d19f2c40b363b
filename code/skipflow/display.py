"""Showing numbers in the book and in Colab with the same notebook.

The book inserts measured numbers into sentences with myst-nb's ``glue``. Colab has no myst-nb, so
:func:`glue` falls back to printing the value: the same notebook runs in both places.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import textwrap
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from skipflow.claims import format_value
from skipflow.claims import reset as reset_ledger
from skipflow.plots import use_style
from skipflow.runtime import describe, set_threads


def glue(name: str, value: object, display: bool = False) -> object:
    """Make ``value`` available to the text as ``{glue:text}`name``` and return it unchanged.

    Tensors of one element and NumPy scalars become Python numbers so that format specs such as ``:.2f``
    work. Outside the book build (no myst-nb) the value is printed as ``name = value``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"`name` must be a simple identifier such as 'ratio_20', got {name!r}.")
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, np.generic):  # np.float64(0.5) would reach the text as "np.float64(0.5)"
        value = value.item()
    try:
        from myst_nb import glue as _myst_glue
    except ImportError:
        print(f"{name} = {value}")
    else:
        _myst_glue(name, value, display=display)
    return value


E_NOTATION = re.compile(r"^([-+]?\d+(?:\.\d+)?)[eE]([-+]?\d+)$")
NEGATIVE_NUMBER = re.compile(r"^-\d[\d.,]*%?$")
E_TOKEN = re.compile(r"(?<![\w.])\d+(?:\.\d+)?e[-+]?\d+(?![\w.])")  # "9.09e-13" inside a sentence
SUPERSCRIPTS = str.maketrans("-+0123456789", "⁻⁺⁰¹²³⁴⁵⁶⁷⁸⁹")


def typeset_number(text: str) -> str:
    """A number as a book prints it, for result tables and glued numbers; any other text is unchanged.

    E-notation far from 1 becomes a power of ten ("5.6e-17" as "5.6 × 10⁻¹⁷", "1e-05" as "10⁻⁵"); between
    10⁻³ and 10³ it is written out with the same significant digits ("8.1e-01" as "0.81"); a negative
    number gets a minus sign ("−0.25"), not a hyphen.
    """
    match = E_NOTATION.match(text.strip())
    if not match:
        return "−" + text[1:] if NEGATIVE_NUMBER.match(text) else text
    mantissa, exponent = match.group(1), int(match.group(2))
    sign = "−" if mantissa.startswith("-") else ""
    mantissa = mantissa.lstrip("+-")
    if -3 <= exponent <= 2:
        digits = len(mantissa.replace(".", "").lstrip("0")) or 1
        return sign + f"{float(mantissa) * 10.0**exponent:.{max(0, digits - 1 - exponent)}f}"
    power = "10" + str(exponent).translate(SUPERSCRIPTS)
    return f"{sign}{power}" if mantissa in ("1", "1.0") else f"{sign}{mantissa} × {power}"


# A number, a percentage or a range of them ("0.80-0.84", "38–40", "1.2e-05"), perhaps followed by a note in
# parentheses; such a cell is right-aligned. "1/√L" or "diverged (3/3)" is text.
_NUMBER = r"[-−+]?\d[\d.,]*(?:e[-+]?\d+)?%?"
NUMERIC_CELL = re.compile(rf"{_NUMBER}(?:\s*[–-]\s*{_NUMBER})?")


class Table:
    """A small table of results: an HTML table in Jupyter and the book, aligned plain text elsewhere.

    Numbers are shown to ``digits`` significant figures (strings as they are); ``caption``, if given, is a
    line above the table saying what its numbers are. Build one with :func:`table`.
    """

    def __init__(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[object]],
        digits: int = 3,
        caption: str | None = None,
    ):
        if caption is not None and not isinstance(caption, str):
            raise TypeError(f"`caption` must be a string or None, got {type(caption).__name__}.")
        if isinstance(header, str) or not isinstance(header, Sequence) or not header:
            raise TypeError(f"`header` must be a non-empty list of column names, got {header!r}.")
        if isinstance(rows, str) or not isinstance(rows, Sequence):
            raise TypeError(f"`rows` must be a list of rows (lists or tuples), got {type(rows).__name__}.")
        for number, row in enumerate(rows):
            if isinstance(row, str) or not isinstance(row, Sequence) or len(row) != len(header):
                raise ValueError(
                    f"`rows[{number}]` must have {len(header)} cells, one per column of `header`: {row!r}."
                )
        self.caption = caption
        self.header = [str(name) for name in header]
        self.cells = [[format_value(value, digits) for value in row] for row in rows]

    def __repr__(self) -> str:
        lines = [self.header, *self.cells]
        widths = [max(len(line[i]) for line in lines) for i in range(len(self.header))]

        def row(cells: list[str]) -> str:  # the first column left-aligned, numbers right-aligned
            padded = [
                c.ljust(w) if n == 0 else c.rjust(w)
                for n, (c, w) in enumerate(zip(cells, widths, strict=True))
            ]
            return "  ".join(padded).rstrip()

        text = "\n".join(row(line) for line in lines)
        return f"{self.caption}\n{text}" if self.caption else text

    def _repr_html_(self) -> str:
        """The caption above a box that scrolls sideways if the table is wider than the column (the caption
        itself wraps to the column); numbers typeset and right-aligned, text left-aligned."""

        def cell(text: str) -> str:
            kind = " class='num'" if NUMERIC_CELL.fullmatch(re.sub(r"\s*\(.*\)$", "", text)) else ""
            return f"<td{kind}>{html.escape(typeset_number(text))}</td>"

        head = "".join(f"<th>{html.escape(name)}</th>" for name in self.header)
        body = "".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in self.cells)
        shown = E_TOKEN.sub(lambda m: typeset_number(m.group(0)), self.caption or "")
        caption = f"<p class='skipflow-table-caption'>{html.escape(shown)}</p>" if self.caption else ""
        return (
            f"<div class='skipflow-result'>{caption}<div class='skipflow-table'><table>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></div>"
        )


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    digits: int = 3,
    caption: str | None = None,
) -> Table:
    """Show results as a table; the last line of a cell, or ``display(table(...))``. See :class:`Table`."""
    return Table(header, rows, digits, caption)


def glue_figure(name: str, fig: object) -> None:
    """Glue a matplotlib figure for a numbered ``{glue:figure}`` directive, rendering it only once.

    With myst-nb the figure is rendered once, shown under the cell (with the name the directive looks for)
    and closed, so the inline backend does not render it a second time at the end of the cell; tag the cell
    ``remove-output`` so the book shows it only in the numbered, captioned figure. Without myst-nb (Colab)
    nothing is glued and the figure is shown as usual. Returns nothing, so that a call on a cell's last line
    does not display the figure once more.

    A figure whose smallest text would render below ``plots.MIN_TEXT_PX`` in the book's column is refused
    with a ``ValueError``, so an illegible figure fails the build instead of reaching a reader.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"`name` must be a simple identifier such as 'fig_flow', got {name!r}.")
    try:
        from myst_nb import glue as _myst_glue
    except ImportError:
        return
    import matplotlib.pyplot as plt

    from skipflow.plots import MIN_TEXT_PX, rendered_text_px

    smallest = rendered_text_px(fig)
    if smallest < MIN_TEXT_PX:
        plt.close(fig)
        raise ValueError(
            f"figure {name!r}: its smallest text would be {smallest:.1f} px in the book's column (at least "
            f"{MIN_TEXT_PX:g} px): make the figure narrower (figsize) or its fonts larger."
        )
    _myst_glue(name, fig, display=True)
    plt.close(fig)


def glue_explorer(name: str, explorer: object) -> None:
    """Show an interactive explorer under the cell and glue it for a numbered ``{glue:figure}``.

    Tag the cell ``remove-output``: the book then shows the explorer once, in the numbered, captioned figure.
    In Jupyter it is shown under the cell as usual; without myst-nb (Colab) it is only shown.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"`name` must be a simple identifier such as 'ch5_explorer', got {name!r}.")
    if not hasattr(explorer, "_repr_html_"):
        raise TypeError(f"`explorer` must be an object shown as HTML, got {type(explorer).__name__}.")
    try:
        from myst_nb import glue as _myst_glue
    except ImportError:
        from IPython.display import display

        display(explorer)
        return
    _myst_glue(name, explorer, display=True)


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


#: Printed output in the book's column holds about 78 characters (14-px monospace in ~660 px); a message
#: wrapped narrower than that is not wrapped a second time by the page.
OUTPUT_COLUMNS = 76


@contextlib.contextmanager
def expect_error(kind: type[BaseException] = Exception, contains: str | None = None) -> Iterator[None]:
    """Run a block that must fail with ``kind``; print only the error, wrapped to the page's column.

    For the chapters' intentional errors: the reader sees the message that matters rather than a long
    traceback through PyTorch's internals, and the book checks that the error really happens. If the
    block raises nothing (or the message lacks ``contains``), this raises ``AssertionError``; an error of
    another type propagates unchanged.
    """
    if not (isinstance(kind, type) and issubclass(kind, BaseException)):
        raise TypeError(f"`kind` must be an exception class such as RuntimeError, got {kind!r}.")
    try:
        yield
    except kind as error:
        if contains is not None and contains not in str(error):
            raise AssertionError(f"expected {kind.__name__} mentioning {contains!r}, got: {error}") from error
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        first_line = first_line.split(" Hint: ")[0]  # PyTorch's debugging advice is not the lesson
        message = f"{type(error).__name__} (as expected): {first_line}"
        print(textwrap.fill(message, width=OUTPUT_COLUMNS))
    else:
        raise AssertionError(f"expected the code to raise {kind.__name__}, but it ran without an error")
