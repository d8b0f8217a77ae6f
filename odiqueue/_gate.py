"""Taking a slot of an anyio semaphore or capacity limiter, cheaply when one is free.

anyio's ``acquire`` is a checkpoint: even when a slot is free it yields to the event loop
once, inside a shielded cancel scope. A batch takes a poll slot and a download slot per
job, and those trips cost more than the work they guard. :func:`take` still raises at once
in a cancelled task, takes a free slot without yielding, and waits (through anyio) only
when there is none. Its callers do real I/O right after, so they yield there.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel

__all__ = ["take"]


async def take(gate: anyio.Semaphore | anyio.CapacityLimiter) -> None:
    """Acquire ``gate``: at once if a slot is free, else wait for one."""
    await anyio.lowlevel.checkpoint_if_cancelled()
    try:
        gate.acquire_nowait()
    except anyio.WouldBlock:
        await gate.acquire()
