"""A notebook client that nudges the kernel while a cell runs, so a lost wake-up cannot stall a test run.

Three times in about forty fresh-clone runs of `make test`, one notebook execution stood still for about ten
minutes: the kernel idle, waiting for a request, the client waiting for that request's reply. This is the
signature of a known class of bug in the kernel's socket handling: ZeroMQ wakes a reader on an *edge*, and a
kernel that consumes the edge without reading the message it announced sleeps until the next message arrives
(ipython/ipykernel#1554, fixed by #1529 for ipykernel 7). A request to a sleeping kernel is a new edge.

`NudgingClient` is nbclient's `NotebookClient` that, while a cell runs, sends a `kernel_info_request` on the
shell channel every `nudge_every` seconds. A healthy kernel answers it after the cell, and nbclient ignores
the reply (it waits for the reply to its own request); a kernel that missed the cell's request wakes up and
runs it. The cell's result is unchanged either way.
"""

from __future__ import annotations

import asyncio
import time
from queue import Empty
from typing import Any

from nbclient import NotebookClient


class NudgingClient(NotebookClient):
    """`nbclient.NotebookClient`, plus a `kernel_info_request` every `nudge_every` seconds of a cell's run."""

    nudge_every: float = 20.0

    async def async_execute_cell(self, cell: Any, cell_index: int, *args: Any, **kwargs: Any) -> Any:
        nudger = asyncio.ensure_future(self._nudge())
        try:
            return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
        finally:
            nudger.cancel()

    async def _nudge(self) -> None:
        while True:
            await asyncio.sleep(self.nudge_every)
            if self.kc is not None:
                self.kc.kernel_info()  # a new message on the shell socket: a new edge for the kernel


def nudging_await_reply(await_reply: Any, every: float = 20.0) -> Any:
    """Wrap nbval's `RunningKernel.await_reply` so that it nudges the kernel every `every` seconds.

    nbval waits for a cell's reply in one blocking call with the whole cell timeout; the wrapper waits in
    slices of `every` seconds, sends a `kernel_info_request` after each empty slice, and gives up (raising
    `queue.Empty`, as nbval expects) only when the cell's own timeout has passed.
    """

    def wrapped(self: Any, msg_id: str, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await_reply(self, msg_id, timeout=every if left is None else min(every, left))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                self.kc.kernel_info()

    return wrapped
