"""The submit rate limiter: at most ``rate`` submits a second, in bursts of ``burst``.

A generic cell-rate algorithm: each acquisition reserves the next free slot at once (no await
between reading and updating), so concurrent submitters never share a slot. On a 429 the rate
halves; each success wins a little back, up to the configured rate (additive increase,
multiplicative decrease, as TCP does).
"""

from __future__ import annotations

from typing import Final

import anyio

from odiqueue import _backoff

__all__ = ["RateLimiter"]

_RECOVERY_STEPS: Final = 20
_FLOOR_FRACTION: Final = 1 / 64


class RateLimiter:
    """Spaces out submits; ``rate=None`` means no limit."""

    def __init__(self, rate: float | None, burst: int = 1) -> None:
        self.limit = rate
        self.rate = rate
        self.burst = max(burst, 1)
        self._tat = 0.0  # the "theoretical arrival time" of the next request

    def reserve(self, now: float) -> float:
        """Take the next slot; returns how long to wait for it (pure, for tests)."""
        if self.rate is None:
            return 0.0
        interval = 1.0 / self.rate
        tat = max(self._tat, now)
        wait = tat - now - (self.burst - 1) * interval
        self._tat = tat + interval
        return max(wait, 0.0)

    async def acquire(self) -> None:
        """Wait for a submit slot."""
        wait = self.reserve(anyio.current_time())
        if wait > 0:
            await _backoff.sleep(wait)

    def slow_down(self) -> None:
        """Halve the rate after the server said 429."""
        if self.rate is not None and self.limit is not None:
            self.rate = max(self.rate / 2, self.limit * _FLOOR_FRACTION)

    def recover(self) -> None:
        """Win back a step of the configured rate after a success."""
        if self.rate is not None and self.limit is not None and self.rate < self.limit:
            self.rate = min(self.limit, self.rate + self.limit / _RECOVERY_STEPS)
