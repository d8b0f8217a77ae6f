"""Pure waiting maths: retry delays, poll intervals, Retry-After; and the one place that sleeps.

Every function here but :func:`sleep` is a pure function of its arguments (randomness comes in
as a ``random.Random``), so tests check the numbers without waiting.
:func:`instant_waits` turns every wait this library makes into an immediate return, for users'
own test suites.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import random
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone

import anyio

from odiqueue._config import PollPolicy, RetryPolicy
from odiqueue._models import JobStatus, Queued

__all__ = [
    "instant_waits",
    "now",
    "parse_retry_after",
    "poll_delay",
    "retry_after_of",
    "retry_delay",
    "sleep",
    "sleep_until_set",
]

_instant = False


@contextlib.contextmanager
def instant_waits(enabled: bool = True) -> Iterator[None]:
    """Make every retry and poll wait of odiqueue return at once (for tests).

    >>> with instant_waits():
    ...     pass  # await client.generate(...) here polls and retries without sleeping
    """
    global _instant
    previous, _instant = _instant, enabled
    try:
        yield
    finally:
        _instant = previous


def now() -> float:
    """``anyio.current_time()``, read straight from a running asyncio loop.

    A batch reads the clock about ten times a job; anyio's lookup of the running backend
    costs more than the reading. Other backends go through anyio.
    """
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return anyio.current_time()


async def sleep(seconds: float) -> None:
    """Wait ``seconds`` (or not at all under :func:`instant_waits`)."""
    await anyio.sleep(0 if _instant else max(seconds, 0.0))


async def sleep_until_set(seconds: float, event: anyio.Event) -> None:
    """Wait ``seconds``, or less if ``event`` is set meanwhile."""
    if _instant or event.is_set():
        await sleep(seconds)
        return
    with anyio.move_on_after(max(seconds, 0.0)):
        await event.wait()


def retry_delay(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """The wait before retry number ``attempt`` (1 for the first retry): full jitter.

    Drawn uniformly from ``[0, min(maximum, initial * 2 ** (attempt - 1))]``, which spreads
    many clients' retries apart better than any fixed schedule.
    """
    ceiling = min(policy.maximum, policy.initial * 2.0 ** min(attempt - 1, 62))
    return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    None when the header is absent or unreadable; never negative.
    """
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(seconds, 0.0)


def retry_after_of(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from a reply's ``Retry-After``, an HTTP date measured against the
    reply's own ``Date`` header when it has one.

    Both dates come from the server's clock, so a client clock an hour off neither turns
    "one second from now" into an hour (and a failed call) nor makes every retry early.
    Without a readable ``Date``, the date is measured against this machine's clock.
    """
    value = headers.get("Retry-After")
    if not value:
        return None
    sent = headers.get("Date")
    server_now = None
    if sent:
        try:
            server_now = email.utils.parsedate_to_datetime(sent)
        except (TypeError, ValueError, IndexError):
            server_now = None
        if server_now is not None and server_now.tzinfo is None:
            server_now = server_now.replace(tzinfo=timezone.utc)
    return parse_retry_after(value, now=server_now)


def poll_delay(
    polls: int,
    status: JobStatus | None,
    policy: PollPolicy,
    rng: random.Random,
    *,
    initial: float | None = None,
    multiplier: float | None = None,
) -> float:
    """The wait before the next status request of one job.

    ``polls`` is how many status requests the job has had. The base interval grows
    geometrically (by ``policy.multiplier``, or ``multiplier``) from ``policy.initial`` (or
    ``initial``) to ``policy.maximum``. A queued
    job with ``position`` jobs ahead waits at least ``position * seconds_per_position``. The
    result is spread by ``policy.jitter`` and never exceeds ``policy.maximum``. (A batch
    knows more about its jobs and plans with ``_plan.next_poll``, which falls back here.)
    """
    growth = policy.multiplier if multiplier is None else multiplier
    base = (policy.initial if initial is None else initial) * growth ** min(polls, 64)
    if isinstance(status, Queued) and status.position:
        base = max(base, status.position * policy.seconds_per_position)
    base = min(base, policy.maximum)
    spread = base * policy.jitter
    return min(policy.maximum, max(0.0, base + rng.uniform(-spread, spread)))
