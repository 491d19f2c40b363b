"""skipflow.display.expect_error: the chapters' intentional errors, shown as one wrapped line and checked."""

from __future__ import annotations

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
    assert "Traceback" not in out and max(len(line) for line in out.splitlines()) <= 100


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
