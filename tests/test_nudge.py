"""tools/nudge.py: the nudging notebook client runs a notebook exactly as nbclient does, nudging meanwhile."""

from __future__ import annotations

import sys
from pathlib import Path
from queue import Empty

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from nudge import NudgingClient, nudging_await_reply


@pytest.mark.slow
def test_a_cell_longer_than_the_nudge_interval_runs_normally(monkeypatch):
    monkeypatch.setattr(NudgingClient, "nudge_every", 0.2)
    sent = []
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import time\ntime.sleep(1.5)\nprint('slept')"),
        nbformat.v4.new_code_cell("print(6 * 7)"),
    ]
    client = NudgingClient(nb, kernel_name="python3", timeout=60)
    original = NudgingClient._nudge

    async def counting_nudge(self):
        real_info = self.kc.kernel_info

        def info():
            sent.append(1)
            return real_info()

        self.kc.kernel_info = info
        await original(self)

    monkeypatch.setattr(NudgingClient, "_nudge", counting_nudge)
    client.execute()
    outputs = ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells]
    assert outputs == ["slept\n", "42\n"]  # the nudges' replies did not leak into the cells
    assert len(sent) >= 3  # the 1.5-s cell was nudged every 0.2 s


class _FakeKernel:
    def __init__(self, empty_slices: int):
        self.empty_slices = empty_slices
        self.nudges = 0
        self.kc = self
        self.timeouts: list[float] = []

    def kernel_info(self):
        self.nudges += 1

    def await_reply(self, msg_id, timeout=None):
        self.timeouts.append(timeout)
        if len(self.timeouts) <= self.empty_slices:
            raise Empty
        return "reply"


def test_nbval_wait_nudges_after_each_empty_slice():
    kernel = _FakeKernel(empty_slices=3)
    wait = nudging_await_reply(_FakeKernel.await_reply, every=0.01)
    assert wait(kernel, "id", timeout=100) == "reply"
    assert kernel.nudges == 3  # one nudge after each empty slice, none after the reply
    assert kernel.timeouts == [0.01] * 4  # waits in slices, not the whole cell timeout at once


def test_nbval_wait_still_times_out():
    kernel = _FakeKernel(empty_slices=10**9)
    wait = nudging_await_reply(_FakeKernel.await_reply, every=0.01)
    with pytest.raises(Empty):
        wait(kernel, "id", timeout=0.05)  # the cell's own timeout still ends the wait
    assert kernel.nudges >= 1


def test_conftest_installs_the_nudging_wait():
    from nbval.kernel import RunningKernel

    assert getattr(RunningKernel.await_reply, "nudges", False)
