"""tools/book_fixes.py shortens an intentional error's traceback to the line a reader needs."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from book_fixes import TRACEBACK_NOTE, last_line_of_traceback

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
