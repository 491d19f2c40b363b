"""tools/book_fixes.py: short tracebacks, per-chapter numbers, glued numbers, labelled figure code."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from book_fixes import (
    TRACEBACK_NOTE,
    describe_figure_images,
    label_figure_code,
    last_line_of_traceback,
    number_per_chapter,
    sort_footnotes_by_label,
    typeset_glued_numbers,
)
from docutils import nodes
from skipflow.display import typeset_number

TRACEBACK = """---------------------------------------------------------------------------
RuntimeError                              Traceback (most recent call last)
Cell In[12], line 3
----> 3 y.backward()
File ~/lib/torch/_tensor.py:626, in Tensor.backward(self)
    625     )
RuntimeError: one of the variables needed for gradient computation has been modified by an inplace operation
"""


def test_the_traceback_keeps_only_the_error_line():
    short = last_line_of_traceback(TRACEBACK)
    assert short.splitlines() == [
        "RuntimeError: one of the variables needed for gradient computation has been modified by an inplace "
        "operation",
        TRACEBACK_NOTE,
    ]


def test_a_message_continued_on_indented_lines_is_kept_whole():
    text = "Traceback\n  File x\nValueError: `width` must be >= 1\n    got 0\n"
    assert last_line_of_traceback(text).splitlines()[:2] == ["ValueError: `width` must be >= 1", "    got 0"]


def test_an_empty_traceback_is_left_alone():
    assert last_line_of_traceback("") == ""


def test_numbers_restart_in_every_chapter():
    env = SimpleNamespace(
        toc_fignumbers={
            "intro": {"figure": {"fig-a": (1,)}},
            "chapters/01_x": {"figure": {"f2": (3,), "f1": (2,)}, "exercise": {"e1": (2,)}},
            "chapters/04_y": {"figure": {"g1": (4,)}, "exercise": {"e9": (9,), "e10": (10,)}},
        }
    )
    changed = number_per_chapter(None, env)
    assert changed == ["chapters/01_x", "chapters/04_y"]
    assert env.toc_fignumbers["intro"] == {"figure": {"fig-a": (1,)}}  # not a chapter: left alone
    assert env.toc_fignumbers["chapters/01_x"] == {
        "figure": {"f1": (1, 1), "f2": (1, 2)},
        "exercise": {"e1": (1, 1)},
    }
    # page order is kept: (9,) before (10,), compared as numbers, not as text
    assert env.toc_fignumbers["chapters/04_y"]["exercise"] == {"e9": (4, 1), "e10": (4, 2)}
    assert number_per_chapter(None, env) == []  # already per chapter: nothing to rewrite


@pytest.mark.parametrize(
    ("glued", "shown"),
    [
        ("5.6e-17", "5.6 × 10⁻¹⁷"),
        ("1e-05", "10⁻⁵"),
        ("-3.6e-06", "−3.6 × 10⁻⁶"),
        ("1.2e+03", "1.2 × 10³"),
        ("2.0e+00", "2.0"),
        ("8.1e-01", "0.81"),  # near 1: written out, same significant digits
        ("7.25e-02", "0.0725"),
        ("-9.0e-01", "−0.90"),
        ("1.2e+02", "120"),
        ("5.0e-04", "5.0 × 10⁻⁴"),
        ("0.82", "0.82"),  # not e-notation: unchanged
        ("-0.25", "−0.25"),  # a minus sign, not a hyphen
        ("-12%", "−12%"),
        ("-", "-"),
        ("1e-3 steps", "1e-3 steps"),  # not a number alone: unchanged
    ],
)
def test_e_notation_reads_as_a_power_of_ten(glued, shown):
    assert typeset_number(glued) == shown


def test_only_pasted_numbers_are_retypeset():
    page = nodes.paragraph()
    page += nodes.inline("5.6e-17", "5.6e-17", classes=["pasted-text"])
    page += nodes.inline("1e-05", "1e-05")  # typed by an author, not glued: left alone
    typeset_glued_numbers(None, page, "chapters/01_x")
    assert [n.astext() for n in page.findall(nodes.inline)] == ["5.6 × 10⁻¹⁷", "1e-05"]


class HideCodeCellNode(nodes.Element):
    """Stands in for myst-nb's node of the same name (the fix recognises it by its name)."""


MARKDOWN = "Text.\n\n```{glue:figure} ch4_fig_a\n:name: fig-ch4-a\n\nIts caption.\n```\n"


def test_folded_drawing_code_names_its_figure(tmp_path):
    notebook = tmp_path / "04_y.ipynb"
    notebook.write_text(
        json.dumps(
            {"cells": [{"cell_type": "markdown", "source": "```{glue:figure} ch4_fig_a\n:name: fig-ch4-a\n"}]}
        ),
        encoding="utf-8",
    )
    env = SimpleNamespace(
        toc_fignumbers={"chapters/04_y": {"figure": {"fig-ch4-a": (4, 3)}}},
        doc2path=lambda docname: notebook,
    )
    page = nodes.section()
    draws = HideCodeCellNode(prompt_show="Show code cell source", prompt_hide="Hide code cell source")
    draws["classes"].append("above-input")
    draws += nodes.literal_block("", 'fig = plot()\nskipflow.glue_figure("ch4_fig_a", fig)')
    other = HideCodeCellNode(prompt_show="Show code cell source", prompt_hide="Hide code cell source")
    other["classes"].append("above-input")
    other += nodes.literal_block("", "x = 1")
    page += [draws, other]
    label_figure_code(SimpleNamespace(env=env), page, "chapters/04_y")
    assert (draws["prompt_show"], draws["prompt_hide"]) == (
        "Show the code of Fig. 4.3",
        "Hide the code of Fig. 4.3",
    )
    assert other["prompt_show"] == "Show code cell source"  # draws no figure: unchanged


def test_a_figure_image_is_described_by_its_caption():
    figure = nodes.figure()
    figure += nodes.image(uri="_images/abc.png", alt="_images/abc.png")
    figure += nodes.caption("", "Gradient norms per layer.")
    kept = nodes.figure()
    kept += nodes.image(uri="b.png", alt="a diagram of the block")
    kept += nodes.caption("", "The block.")
    page = nodes.section()
    page += [figure, kept]
    describe_figure_images(None, page, "chapters/01_x")
    assert [i["alt"] for i in page.findall(nodes.image)] == [
        "Gradient norms per layer.",
        "a diagram of the block",
    ]


def test_a_chapter_lists_its_works_in_book_wide_order():
    listing = nodes.section()
    for number in ("12", "3", "7"):
        note = nodes.footnote()
        note += nodes.label("", number)
        note += nodes.paragraph("", f"work {number}")
        listing += note
    listing += nodes.paragraph("", "after the list")  # other children keep their place
    sort_footnotes_by_label(listing)
    assert [c.astext().split("\n")[0] for c in listing.children] == ["3", "7", "12", "after the list"]
