"""Waiting for one job: its status changes until it ends, then its result once served.

Both loops take the call they repeat as a function, so they are the same for
:meth:`AsyncClient.poll`, :meth:`AsyncClient.wait` and a batch's save step, and sleep only
through ``_backoff`` (which :func:`~odiqueue.instant_waits` makes instant).
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Awaitable, Callable

from odiqueue import _backoff, _wire
from odiqueue._config import PollPolicy, RetryPolicy
from odiqueue._errors import DeadlineExceededError, DecodeError, OdiqueueError
from odiqueue._models import ImageResult, JobStatus, failure_of

__all__ = ["UnknownStatusWatch", "raise_if_failed", "served_result", "status_changes"]


async def status_changes(
    ask: Callable[[], Awaitable[JobStatus]],
    request_id: str,
    policy: PollPolicy,
    rng: random.Random,
    limit: float | None,
) -> AsyncGenerator[JobStatus, None]:
    """Yield each new status ``ask()`` gives, until a terminal one; polls paced by ``policy``.

    Raises :class:`~odiqueue.DeadlineExceededError` once ``limit`` seconds have passed.
    """
    give_up = None if limit is None else _backoff.now() + limit
    last: JobStatus | None = None
    polls = 0
    unknown = UnknownStatusWatch(policy)
    while True:
        status = await ask()
        polls += 1
        unknown.look(status, request_id)
        if status != last:
            last = status
            yield status
        if status.terminal:
            return
        delay = _backoff.poll_delay(polls, status, policy, rng)
        if give_up is not None:
            remaining = give_up - _backoff.now()
            if remaining <= 0:
                raise DeadlineExceededError(
                    f"the job did not finish within {limit:g}s", request_id=request_id
                )
            delay = min(delay, remaining)
        await _backoff.sleep(delay)


async def served_result(
    ask: Callable[[], Awaitable[ImageResult | None]],
    request_id: str,
    policy: RetryPolicy,
    rng: random.Random,
) -> ImageResult:
    """The result of a job seen succeeded, asked again while ``ask()`` says "not ready".

    The status endpoint can run ahead of the result endpoint; the re-asks are paced and
    bounded by the retry policy, then :class:`~odiqueue.OdiqueueError` is raised.
    """
    for attempt in range(1, policy.attempts + 1):
        found = await ask()
        if found is not None:
            return found
        if attempt < policy.attempts:
            await _backoff.sleep(_backoff.retry_delay(attempt, policy, rng))
    raise OdiqueueError(
        "the job completed but its result never became available", request_id=request_id
    )


def raise_if_failed(status: JobStatus, request_id: str) -> None:
    """Raise the error a job that ended without images stands for; nothing otherwise."""
    error = failure_of(status, request_id)
    if error is not None:
        raise error


class UnknownStatusWatch:
    """Bounds a job that reports only status values no provider documents: such a job is
    not known to be running, so unlike one that is, it is not followed forever."""

    def __init__(self, policy: PollPolicy) -> None:
        self._limit = policy.unknown_status_limit
        self._since: float | None = None

    def look(self, status: JobStatus, request_id: str) -> None:
        """Note one status; raise :class:`~odiqueue.DecodeError` once unknown values alone
        have come for ``PollPolicy.unknown_status_limit`` seconds."""
        word = _wire.unknown_status(status)
        if word is None:
            self._since = None
            return
        now = _backoff.now()
        if self._since is None:
            self._since = now
        elif now - self._since >= self._limit:
            raise DecodeError(
                f"the job's status {word[:40]!r} is none odiqueue knows, for "
                f"{self._limit:g}s: given up (not cancelled: run again to follow it by id)",
                path="$.status",
                request_id=request_id,
            )
