"""Taking a slot, or handing over an item, through anyio without a needless trip through
the event loop.

anyio's ``acquire``, ``send`` and ``receive`` are checkpoints: even when they need not wait
they yield to the event loop once (``acquire`` inside a shielded cancel scope). A batch takes
a poll slot and a download slot per job, and hands each job's outcome to the caller, and
those trips cost more than the work they guard. The functions here still raise at once in a
cancelled task, and go on without yielding when no wait is needed; they wait (through anyio)
only when they must. Their callers yield soon after anyway: a slot guards real I/O, and a
batch's outcome stream is bounded, so a worker handing over outcomes that need no request
(items an earlier run finished) yields at the latest once the buffer is full.
"""

from __future__ import annotations

from typing import TypeVar

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["receive", "send", "take"]

T = TypeVar("T")


async def take(gate: anyio.Semaphore | anyio.CapacityLimiter) -> None:
    """Acquire ``gate``: at once if a slot is free, else wait for one."""
    await anyio.lowlevel.checkpoint_if_cancelled()
    try:
        gate.acquire_nowait()
    except anyio.WouldBlock:
        await gate.acquire()


async def send(stream: MemoryObjectSendStream[T], item: T) -> None:
    """Send ``item``: at once if a receiver waits or the buffer has room, else wait."""
    await anyio.lowlevel.checkpoint_if_cancelled()
    try:
        stream.send_nowait(item)
    except anyio.WouldBlock:
        await stream.send(item)


async def receive(stream: MemoryObjectReceiveStream[T]) -> T:
    """Receive an item: at once if one is buffered, else wait for one (or the stream's end)."""
    await anyio.lowlevel.checkpoint_if_cancelled()
    try:
        return stream.receive_nowait()
    except anyio.WouldBlock:
        return await stream.receive()
