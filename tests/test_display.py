"""skipflow.display: intentional errors shown as one wrapped line and checked; result tables."""

from __future__ import annotations

import re

import pytest
import torch
from skipflow import display, pitfalls


def test_prints_only_the_error_wrapped_to_the_column(capsys):
    with display.expect_error(RuntimeError):
        block = pitfalls.AddIntoReluBlock(4)
        block(torch.randn(3, 4, requires_grad=True)).sum().backward()
    out = capsys.readouterr().out
    assert out.startswith("RuntimeError (as expected): ")
    assert "inplace operation" in out.replace("\n", " ")
    assert "Traceback" not in out and max(len(line) for line in out.splitlines()) <= display.OUTPUT_COLUMNS


def test_a_block_that_does_not_fail_is_an_error():
    with pytest.raises(AssertionError, match="ran without an error"), display.expect_error(RuntimeError):
        torch.ones(2).sum()


def test_another_error_type_propagates_and_a_wrong_message_is_caught():
    with pytest.raises(KeyError), display.expect_error(RuntimeError):
        raise KeyError("x")
    wrong_message = pytest.raises(AssertionError, match="mentioning 'shape'")
    with wrong_message, display.expect_error(ValueError, contains="shape"):
        raise ValueError("something else")
    with pytest.raises(TypeError, match="`kind`"), display.expect_error("RuntimeError"):
        pass


def test_a_table_shows_the_same_cells_as_html_and_as_aligned_text():
    from skipflow.display import table

    shown = table(["family", "depth", "ratio"], [["MLP", 10, 1.23456], ["CNN <BN>", 34, 2.0]])
    assert repr(shown).splitlines() == [
        "family    depth  ratio",
        "MLP          10   1.23",
        "CNN <BN>     34      2",
    ]
    page = shown._repr_html_()
    assert page.count("<tr>") == 3 and "<td class='num'>1.23</td>" in page  # numbers align right
    assert "<td>CNN &lt;BN&gt;</td>" in page and "<BN>" not in page  # text is escaped, aligned left
    assert "<div class='skipflow-table'><table>" in page  # the box that scrolls sideways (skipflow.css)
    typeset = table(["x"], [[5.6e-17], [-0.25], ["-3 (IQR)"]])._repr_html_()
    assert "5.6 × 10⁻¹⁷" in typeset and "−0.25" in typeset  # as a book prints numbers
    assert "<td class='num'>-3 (IQR)</td>" in typeset  # only a whole number is re-typeset
    aligned = table(["fix", "loss"], [["1/√L", "0.061–0.074"], ["diverged (3/3)", "38-40"]])._repr_html_()
    assert "<td>1/√L</td>" in aligned and "<td>diverged (3/3)</td>" in aligned  # text: left
    assert "<td class='num'>0.061–0.074</td>" in aligned and "<td class='num'>38-40</td>" in aligned


def test_a_table_caption_says_what_the_numbers_are_in_both_forms():
    from skipflow.display import table

    shown = table(["n", "ratio"], [[4, 0.5]], caption="saved activations <per block>")
    assert repr(shown).splitlines()[0] == "saved activations <per block>"
    page = shown._repr_html_()
    # the caption sits above the scrolling box, so it wraps to the column instead of scrolling away
    assert page.index("saved activations &lt;per block&gt;</p>") < page.index("<div class='skipflow-table'>")
    assert "skipflow-table-caption" not in table(["n"], [[1]])._repr_html_()
    powered = table(["n"], [[1]], caption="20 layers (0.25²⁰ = 9.09e-13)")._repr_html_()
    assert "(0.25²⁰ = 9.09 × 10⁻¹³)" in powered  # e-notation in a caption is typeset too
    with pytest.raises(TypeError, match="`caption`"):
        table(["n"], [[1]], caption=3)


@pytest.mark.parametrize(
    ("header", "rows", "error", "names"),
    [
        (["a", "b"], [[1]], ValueError, "rows[0]"),
        ("ab", [], TypeError, "header"),
        ([], [], TypeError, "header"),
        (["a"], "x", TypeError, "rows"),
        (["a"], ["x"], ValueError, "rows[0]"),
    ],
)
def test_a_malformed_table_names_the_argument(header, rows, error, names):
    from skipflow.display import table

    with pytest.raises(error, match=re.escape(f"`{names}`")):
        table(header, rows)


def test_an_explorer_is_glued_for_a_numbered_figure_and_shown(monkeypatch):
    import myst_nb

    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, obj, display: calls.append((name, obj, display)))

    class Page:
        def _repr_html_(self) -> str:
            return "<div>explorer</div>"

    page = Page()
    display.glue_explorer("ch9_explorer", page)
    assert calls == [("ch9_explorer", page, True)]  # glued, and shown under the cell in Jupyter
    with pytest.raises(TypeError, match="`explorer`"):
        display.glue_explorer("ch9_explorer", 3)
    with pytest.raises(ValueError, match="`name`"):
        display.glue_explorer("not a name", page)
