"""How fast and how much at once: the submit rate limiter, and taking a slot cheaply.

The submit rate limiter: at most ``rate`` submits a second, in bursts of ``burst``.

A generic cell-rate algorithm: each acquisition reserves the next free slot at once (no await
between reading and updating), so concurrent submitters never share a slot. On a 429 the rate
halves; each success wins a little back, up to where it was (additive increase,
multiplicative decrease, as TCP does). Without a configured rate the limiter is open until the
server first says 429; it then starts from half the rate it was seeing, and opens again
once it has recovered.

Taking a slot, or handing over an item, through anyio without a needless trip through
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

from collections import deque
from typing import Final, TypeVar

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from odiqueue import _backoff

__all__ = ["RateLimiter", "receive", "send", "take"]


_RECOVERY_STEPS: Final = 20
_FLOOR: Final = 0.2
_HISTORY: Final = 32
#: Seconds after a slow-down during which further 429s do not slow down again.
HOLD: Final = 1.0


class RateLimiter:
    """Spaces out submits; ``rate=None`` means no limit until the server asks for one."""

    def __init__(self, rate: float | None, burst: int = 1) -> None:
        self.limit = rate
        self.rate = rate
        self.burst = max(burst, 1)
        self._ceiling = rate
        self._tat = 0.0  # the "theoretical arrival time" of the next request
        self._recent: deque[float] = deque(maxlen=_HISTORY)
        self._slowed_at = float("-inf")

    def reserve(self, now: float) -> float:
        """Take the next slot; returns how long to wait for it (pure, for tests)."""
        self._recent.append(now)
        if self.rate is None:
            return 0.0
        interval = 1.0 / self.rate
        tat = max(self._tat, now)
        wait = tat - now - (self.burst - 1) * interval
        self._tat = tat + interval
        return max(wait, 0.0)

    async def acquire(self) -> None:
        """Wait for a submit slot."""
        wait = self.reserve(_backoff.now())
        if wait > 0:
            await _backoff.sleep(wait)

    def observed_rate(self) -> float | None:
        """Submits per second over the recent ones, or None with too few."""
        if len(self._recent) < 2 or self._recent[-1] <= self._recent[0]:
            return None
        return (len(self._recent) - 1) / (self._recent[-1] - self._recent[0])

    def slow_down(self, now: float) -> None:
        """Halve the rate after the server refused a submit with 429.

        Once per HOLD seconds at most: the submits that were in flight together all learn
        of the same refusal, and it should halve the rate once, not once for each.
        """
        if now - self._slowed_at < HOLD:
            return
        self._slowed_at = now
        current = self.rate if self.rate is not None else self.observed_rate()
        if current is None:
            current = float(self.burst)
        if self._ceiling is None or self.limit is None:
            self._ceiling = max(self._ceiling or 0.0, current)
        self.rate = max(current / 2, _FLOOR)

    def recover(self) -> None:
        """Win back a step of the rate after a success."""
        if self.rate is None or self._ceiling is None:
            return
        self.rate = min(self._ceiling, self.rate + self._ceiling / _RECOVERY_STEPS)
        if self.limit is None and self.rate >= self._ceiling:
            self.rate, self._ceiling = None, None


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
