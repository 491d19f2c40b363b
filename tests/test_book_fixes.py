"""tools/book_fixes.py shortens an intentional error's traceback to the line a reader needs."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from book_fixes import TRACEBACK_NOTE, last_line_of_traceback, number_per_chapter

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
