"""A notebook client whose waits for the kernel cannot miss a message: it polls in short slices.

Now and then a notebook run by nbclient (the Colab simulation, a seed sweep) stood still for ten minutes,
then went on and passed. Caught live on 2026-12-02 with py-spy and `ss`: the kernel was idle and healthy (it
answered within the same millisecond each request sent to it), while the client slept in `epoll_wait`,
waiting for the reply to a cell. The client had lost its wake-up. A zmq.asyncio socket wakes its reader
through the socket's file descriptor, which signals a change of state only; when anything touches the socket
(a send, a query of its events) after a message arrived and before the event loop's turn, the signal is
consumed and the reader sleeps with the message unread (tests/test_kernel_waits.py reproduces this). The run
went on when the cell's timeout (600 s) ended the wait: pyzmq ends a timed poll with a real `zmq_poll`,
which sees the message.

`PatientClient` is nbclient's `NotebookClient` whose waits on the shell and IOPub channels are cut into
slices of `slice_s` seconds. Each slice ends with that real poll, so a lost wake-up costs at most one slice.
A wait with a timeout still ends with `queue.Empty` once the whole timeout has passed.

nbval uses the blocking client, whose `zmq_poll` reports a queued message whenever it is called: its waits
cannot lose a wake-up this way.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from queue import Empty
from typing import Any

from nbclient import NotebookClient

GetMsg = Callable[..., Awaitable[Any]]


def in_slices(get_msg: GetMsg, slice_s: float) -> GetMsg:
    """`get_msg(timeout)` of an async channel, waiting at most `slice_s` seconds per poll."""

    async def get_msg_in_slices(timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await get_msg(timeout=slice_s if left is None else min(slice_s, left))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    return get_msg_in_slices


class PatientClient(NotebookClient):
    """`nbclient.NotebookClient` whose shell and IOPub waits poll every `slice_s` seconds."""

    slice_s: float = 1.0

    async def async_start_new_kernel_client(self) -> Any:
        kc = await super().async_start_new_kernel_client()
        for channel in (kc.shell_channel, kc.iopub_channel):
            channel.get_msg = in_slices(channel.get_msg, self.slice_s)
        return kc
