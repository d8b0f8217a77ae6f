"""Retrying one call: the attempts, the waits between them, and the 429 cool-down every call shares.

Retry-After is honoured here: a reply's own wait is used instead of the backoff (up to
``RetryPolicy.max_retry_after``), and a 429 holds every call of the client, not just the
one that met it, so a rate-limited client slows down as a whole. Which failures are worth
another attempt is decided where they happen (``_http``), which marks them with
:func:`retryable`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from odiqueue import _backoff
from odiqueue._config import RetryPolicy
from odiqueue._errors import OdiqueueError, RateLimitError

__all__ = ["Call", "Retrier", "Retryable", "retryable"]

log = logging.getLogger("odiqueue")

T = TypeVar("T")

#: Which call of the API an HTTP exchange is (named in log lines).
Call = Literal["submit", "status", "result", "cancel", "image"]


class Retryable(Exception):
    """An attempt failed in a way the retry rules allow retrying (never leaves the core)."""

    def __init__(self, error: OdiqueueError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def retryable(error: OdiqueueError, retry_after: float | None = None) -> Retryable:
    """Mark ``error`` as worth another attempt (after ``retry_after`` seconds, if given)."""
    return Retryable(error, retry_after)


class Retrier:
    """Runs attempts under one :class:`RetryPolicy`, with one cool-down shared by all calls."""

    def __init__(self, policy: RetryPolicy, rng: random.Random) -> None:
        self.policy = policy
        self._rng = rng
        # Shared back-pressure: a 429 on any call holds every call until this moment.
        self._not_before = 0.0
        #: How many submits the server refused with 429 (read by a batch's rate limiter).
        self.submits_refused = 0

    async def run(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        call: Call,
        request_id: str | None,
    ) -> T:
        """Run ``attempt`` until it succeeds, retrying :class:`Retryable` failures.

        Gives up after ``RetryPolicy.attempts`` tries or ``RetryPolicy.timeout`` seconds.
        """
        policy = self.policy
        started = _backoff.now()
        tries = 0
        while True:
            tries += 1
            if self._not_before > started:  # rare: only after a 429 (checked without a call)
                await self._wait_for_cooldown()
            try:
                return await attempt()
            except Retryable as exc:
                error, retry_after = exc.error, exc.retry_after
            if retry_after is not None and retry_after > policy.max_retry_after:
                if isinstance(error, RateLimitError):
                    # Not waited for here, but every other call still backs off a while.
                    self._not_before = max(
                        self._not_before, _backoff.now() + policy.max_retry_after
                    )
                raise error
            delay = retry_after
            if delay is None:
                delay = _backoff.retry_delay(tries, policy, self._rng)
            elapsed = _backoff.now() - started
            if tries >= policy.attempts or elapsed + delay > policy.timeout:
                raise error
            log.debug(
                "%s of request %s: retrying in %.2fs after %s (try %d)",
                call,
                request_id or "(new)",
                delay,
                type(error).__name__,
                tries,
            )
            if isinstance(error, RateLimitError):
                # One cool-down for every caller: the wait happens at the top of the loop,
                # where every other request of this client waits for it too.
                self._not_before = max(self._not_before, _backoff.now() + delay)
            else:
                await _backoff.sleep(delay)

    async def _wait_for_cooldown(self) -> None:
        wait = self._not_before - _backoff.now()
        if wait > 0:
            await _backoff.sleep(wait)
