"""tools/kernel_waits.py: a zmq.asyncio wait can lose its wake-up; a wait in slices cannot."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from queue import Empty

import nbformat
import pytest
import zmq
import zmq.asyncio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import kernel_waits
from kernel_waits import PatientClient, in_slices


async def _lost_wake_up(sliced: bool) -> object:
    """Queue a message for a waiting zmq.asyncio socket the way the stalled runs did, then wait for it."""
    context = zmq.asyncio.Context()
    sender_context = zmq.Context()
    receiver = context.socket(zmq.PAIR)
    sender = sender_context.socket(zmq.PAIR)
    try:
        sender.connect(f"tcp://127.0.0.1:{receiver.bind_to_random_port('tcp://127.0.0.1')}")

        async def get_msg(timeout: float | None = None) -> bytes:  # as jupyter_client's async channel does
            if await receiver.poll(None if timeout is None else int(timeout * 1000)):
                return await receiver.recv()
            raise Empty

        wait = asyncio.ensure_future(in_slices(get_msg, 0.1)() if sliced else get_msg())
        await asyncio.sleep(0.05)  # the wait has looked at the socket: nothing yet
        sender.send(b"reply")
        time.sleep(0.2)  # the message arrives while the event loop is busy elsewhere
        receiver.getsockopt(zmq.EVENTS)  # touching the socket consumes the wake-up signal
        try:
            return await asyncio.wait_for(wait, 2.0)
        except asyncio.TimeoutError:
            return "stalled"
    finally:
        sender.close(linger=0)
        receiver.close(linger=0)
        sender_context.term()
        context.term()


def test_a_plain_wait_loses_the_wake_up_and_a_sliced_wait_does_not():
    assert asyncio.run(_lost_wake_up(sliced=False)) == "stalled"  # the mechanism behind the ten-minute stalls
    assert asyncio.run(_lost_wake_up(sliced=True)) == b"reply"


def test_a_sliced_wait_still_ends_at_its_timeout():
    slices: list[float] = []

    async def never(timeout: float | None = None) -> None:
        slices.append(timeout)
        await asyncio.sleep(timeout)
        raise Empty

    start = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(in_slices(never, 0.02)(timeout=0.1))
    assert time.monotonic() - start >= 0.1  # not before the caller's timeout
    assert len(slices) >= 4 and max(slices) <= 0.02  # in slices, never the whole timeout at once


@pytest.mark.slow
def test_the_patient_client_runs_a_notebook_as_nbclient_does(monkeypatch):
    slices: list[float | None] = []

    def recording_in_slices(get_msg, slice_s):
        async def recorded(timeout=None):
            slices.append(timeout)
            return await get_msg(timeout=timeout)

        return in_slices(recorded, slice_s)

    monkeypatch.setattr(kernel_waits, "in_slices", recording_in_slices)
    monkeypatch.setattr(PatientClient, "slice_s", 0.1)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import time\ntime.sleep(1.5)\nprint('slept')"),
        nbformat.v4.new_code_cell("print(6 * 7)"),
    ]
    PatientClient(nb, kernel_name="python3", timeout=60).execute()
    assert ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells] == ["slept\n", "42\n"]
    assert len(slices) >= 10 and all(s is not None and s <= 0.1 for s in slices)  # 1.5 s, polled every 0.1 s
