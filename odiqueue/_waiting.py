"""Waiting for one job: its status changes until it ends, then its result once served.

Both loops take the call they repeat as a function, so they are the same for
:meth:`AsyncClient.poll`, :meth:`AsyncClient.wait` and a batch's save step, and sleep only
through ``_backoff`` (which :func:`~odiqueue.instant_waits` makes instant).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Protocol

import anyio

from odiqueue import _backoff
from odiqueue._config import DEFAULT_CANCEL_TIMEOUT, PollPolicy, RetryPolicy
from odiqueue._errors import DeadlineExceededError, OdiqueueError
from odiqueue._models import CancelOutcome, ImageResult, JobHandle, JobStatus, failure_of
from odiqueue._request import ImageRequest

__all__ = ["WaitingCalls", "raise_if_failed", "served_result", "status_changes"]

log = logging.getLogger("odiqueue")


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
    while True:
        status = await ask()
        polls += 1
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


class _Calls(Protocol):
    """What the waiting calls use of the client they are part of."""

    _poll: PollPolicy
    _rng: random.Random

    @property
    def retry_policy(self) -> RetryPolicy: ...
    def _handle(self, job: JobHandle | str) -> JobHandle: ...
    def _statuses(self, handle: JobHandle, limit: float | None) -> AsyncGenerator[JobStatus]: ...
    async def _cancel_quietly(self, handle: JobHandle) -> None: ...
    async def submit(self, request: ImageRequest | str) -> JobHandle: ...
    async def status(self, job: JobHandle | str) -> JobStatus: ...
    async def result(self, job: JobHandle | str) -> ImageResult | None: ...
    async def cancel(self, job: JobHandle | str) -> CancelOutcome: ...
    async def completed_result(self, job: JobHandle | str) -> ImageResult: ...
    async def wait(
        self,
        job: JobHandle | str,
        *,
        deadline: float | None = None,
        cancel_on_deadline: bool = True,
        keep_remote: bool = False,
    ) -> ImageResult: ...


class WaitingCalls:
    """:class:`~odiqueue.AsyncClient`'s calls that wait for a job: poll, wait, generate.

    A part of the client class (it inherits them), kept here beside the loops they run.
    """

    async def poll(
        self: _Calls, job: JobHandle | str, *, deadline: float | None = None
    ) -> AsyncIterator[JobStatus]:
        """Yield each change of the job's status until it is terminal.

        Waits between requests grow from ``PollPolicy.initial`` to ``PollPolicy.maximum``,
        longer while the job is far back in the queue. ``deadline`` (seconds from now,
        default ``PollPolicy.deadline``) raises :class:`~odiqueue.DeadlineExceededError`.

        >>> async for status in client.poll(handle):
        ...     print(type(status).__name__)
        """
        handle = self._handle(job)
        limit = deadline if deadline is not None else self._poll.deadline
        async with contextlib.aclosing(self._statuses(handle, limit)) as statuses:
            async for status in statuses:
                yield status

    def _statuses(
        self: _Calls, handle: JobHandle, limit: float | None
    ) -> AsyncGenerator[JobStatus]:
        return status_changes(
            lambda: self.status(handle), handle.request_id, self._poll, self._rng, limit
        )

    async def wait(
        self: _Calls,
        job: JobHandle | str,
        *,
        deadline: float | None = None,
        cancel_on_deadline: bool = True,
        keep_remote: bool = False,
    ) -> ImageResult:
        """Wait for the job to finish and return its images.

        Raises :class:`~odiqueue.JobFailedError` or :class:`~odiqueue.JobCancelledError` when
        it ends without images. When ``deadline`` passes, the job is cancelled on the server
        (unless ``cancel_on_deadline`` is false) and :class:`~odiqueue.DeadlineExceededError`
        is raised.

        When the waiting task itself is cancelled (an ``anyio.fail_after`` or
        ``asyncio.wait_for`` timeout, a web request whose client went away, Ctrl-C in
        :class:`~odiqueue.Client`), the job is cancelled on the server too, shielded and
        within ``BatchOptions.cancel_timeout``'s default (10 s), before the cancellation
        goes on: nobody is left to collect its images. ``keep_remote=True`` leaves it
        running (pick it up later with its id).
        """
        handle = self._handle(job)
        limit = deadline if deadline is not None else self._poll.deadline
        try:
            with anyio.fail_after(limit):
                async with contextlib.aclosing(self._statuses(handle, None)) as statuses:
                    async for status in statuses:
                        raise_if_failed(status, handle.request_id)
                return await self.completed_result(handle)
        except TimeoutError:
            if cancel_on_deadline:
                await self._cancel_quietly(handle)
            raise DeadlineExceededError(
                f"the job did not finish within {limit}s", request_id=handle.request_id
            ) from None
        except anyio.get_cancelled_exc_class():
            if not keep_remote:
                await self._cancel_quietly(handle)
            raise

    async def completed_result(self: _Calls, job: JobHandle | str) -> ImageResult:
        """The images of a job whose status said it succeeded.

        The status endpoint can run ahead of the result endpoint, so a "not ready" answer is
        asked again, paced and bounded by the retry policy (``RetryPolicy.attempts``); then
        :class:`~odiqueue.OdiqueueError` is raised. :meth:`wait` and batches both use this.
        """
        handle = self._handle(job)
        return await served_result(
            lambda: self.result(handle), handle.request_id, self.retry_policy, self._rng
        )

    async def generate(
        self: _Calls,
        request: ImageRequest | str,
        *,
        deadline: float | None = None,
        keep_remote: bool = False,
    ) -> ImageResult:
        """Submit one request and wait for its images (``result.images``, in order).

        >>> result = await client.generate("A blue ceramic mug on oak, soft light")

        Cancelling the task while it waits cancels the job on the server, unless
        ``keep_remote`` (see :meth:`wait`).
        """
        # The submit runs as a task of its own: a native asyncio cancel (asyncio.wait_for,
        # asyncio.timeout) passes through anyio's shield, and would drop the reply that
        # names a job already paid for. Its reply is awaited whatever happens here.
        submitting = asyncio.ensure_future(self.submit(request))
        try:
            handle = await asyncio.shield(submitting)
        except asyncio.CancelledError:
            with anyio.CancelScope(shield=True):
                try:
                    handle = await submitting
                except Exception as exc:  # no job was created, or none is known
                    log.debug("submit of request (new): ended by %s after a cancel", exc)
                else:
                    if not keep_remote:
                        await self._cancel_quietly(handle)
            raise
        return await self.wait(handle, deadline=deadline, keep_remote=keep_remote)

    async def _cancel_quietly(self: _Calls, handle: JobHandle) -> None:
        with anyio.move_on_after(DEFAULT_CANCEL_TIMEOUT, shield=True):
            try:
                await self.cancel(handle)
            except Exception as exc:  # best effort: the deadline or cancel is what matters
                log.warning("could not cancel request %s: %s", handle.request_id, exc)
