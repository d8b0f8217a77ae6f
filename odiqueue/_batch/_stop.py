"""A graceful stop of a batch (:meth:`Batch.stop`): what is not started is not paid for, what
is paid for is not thrown away.

A job that has started running is billed whether or not it is cancelled afterwards, and a
cancelled job must be submitted (and paid for) again by the rerun. So a stop:

1. submits nothing more: items not yet submitted are dropped (a submit already on the wire
   is let through, so its job is known by id rather than left uncertain);
2. cancels the jobs the server still holds in its queue (their status is asked again first,
   since the last poll may be old), unless ``keep_remote``. A job at the head of the queue
   (position 0) is left alone: it may start before the cancel lands, and would then be paid
   for and lost;
3. follows the other jobs for up to ``grace`` seconds, saving each one that finishes;
4. then leaves the rest on the server, uncancelled: their "submitted" lines stay the last
   word in the manifest, so the rerun fetches them by id instead of submitting them again.

Leaving the batch's ``async with`` before the stop is over (a second Ctrl-C) cancels the
jobs still followed, as leaving it early always does (unless ``keep_remote``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

import anyio
import anyio.lowlevel
import attrs

from odiqueue._batch._jobs import LiveJobs, Work
from odiqueue._errors import OdiqueueError
from odiqueue._models import CancelOutcome, Queued

if TYPE_CHECKING:
    from odiqueue._client import AsyncClient

__all__ = ["DEFAULT_STOP_GRACE", "StopReport", "Stopper"]

log = logging.getLogger("odiqueue")

#: Seconds a graceful stop waits for running jobs to finish (and be saved) before it leaves
#: them on the server for the rerun to collect.
DEFAULT_STOP_GRACE: Final = 10.0


@attrs.frozen(kw_only=True)
class StopReport:
    """What a graceful stop did (:attr:`Batch.stopped`).

    ``cancelled``: request ids of jobs cancelled while still queued (never started, so not
    billed; the rerun submits those items again). ``left``: request ids of jobs still
    running (or next in the queue) when the grace period ended, left on the server: the
    rerun fetches them by id without paying again. ``done`` is false while the stop is
    still under way.
    """

    cancelled: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    done: bool = False


@attrs.define(eq=False)
class _Guard:
    """One worker's current item and the scope that lets a stop drop it."""

    scope: anyio.CancelScope
    work: Work | None = None


class Stopper:
    """The stop of one batch: asked once, carried out in the batch's task group."""

    def __init__(self, client: AsyncClient, live: LiveJobs, *, keep_remote: bool) -> None:
        self._client = client
        self._live = live
        self._keep_remote = keep_remote
        self._guards: set[_Guard] = set()
        self._idle = anyio.Event()
        self._cancelled: list[str] = []
        self._left: list[str] = []
        self._grace_over = False
        self.requested = False

    @property
    def report(self) -> StopReport | None:
        """What the stop did so far; None when no stop was asked."""
        if not self.requested:
            return None
        done = self._grace_over and not self._guards  # submits on the wire settled too
        return StopReport(cancelled=tuple(self._cancelled), left=tuple(self._left), done=done)

    @contextmanager
    def guard(self) -> Iterator[_Guard]:
        """Scope one item's trip through a worker, so that a stop can drop it."""
        guard = _Guard(anyio.CancelScope())
        self._guards.add(guard)
        try:
            with guard.scope:
                yield guard
        finally:
            self._guards.discard(guard)
            if self.requested and not self._guards:
                self._idle.set()

    def request(self) -> None:
        """Stop submitting now: drop every item not submitted (nor being submitted)."""
        self.requested = True
        for guard in list(self._guards):
            work = guard.work
            if work is None or (work.handle is None and not work.posting):
                guard.scope.cancel()
        if not self._guards:
            self._idle.set()

    async def run(self, grace: float) -> None:
        """Withdraw the queued jobs, give the others ``grace`` seconds, leave the rest."""
        if not self._keep_remote:
            async with anyio.create_task_group() as group:
                for guard in list(self._guards):
                    work = guard.work
                    if work is not None and work.handle is not None and work.stage == "queued":
                        group.start_soon(self._withdraw, work)
        with anyio.move_on_after(grace):
            await self._idle.wait()
        self._grace_over = True
        for guard in list(self._guards):
            work = guard.work
            if work is not None and work.posting:
                continue  # its job is known by id once the reply is in: see ``settle``
            if work is not None and work.handle is not None:
                self._leave(work)
            guard.scope.cancel()
        if self._left:
            log.warning(
                "stopped: %d job(s) left to run on the server; a rerun collects them by id",
                len(self._left),
            )

    async def settle(self, work: Work) -> None:
        """A job submitted while a stop was under way: withdrawn if still queued, left on
        the server if the grace period is over, else followed like the others."""
        assert work.handle is not None
        if not self._keep_remote:
            await self._withdraw(work)
        if self._grace_over and work.handle.request_id not in self._cancelled:
            self._leave(work)
            self._cancel_guard(work)
        await anyio.lowlevel.checkpoint()  # where a dropped item leaves its worker

    async def drop(self, work: Work) -> None:
        """Drop an item not submitted (again): its worker moves on without an outcome."""
        self._cancel_guard(work)
        await anyio.lowlevel.checkpoint()

    def _cancel_guard(self, work: Work) -> None:
        for guard in self._guards:
            if guard.work is work:
                guard.scope.cancel()

    async def _withdraw(self, work: Work) -> None:
        """Cancel the job if the server still has it queued behind another job."""
        handle = work.handle
        assert handle is not None
        try:
            status = await self._client.status(handle)
        except OdiqueueError as exc:
            log.info("item %s: status unknown (%s); left to run", work.key, exc)
            return
        if not isinstance(status, Queued) or status.position == 0:
            return
        if await self._live.cancel(handle, work.key) is CancelOutcome.REQUESTED:
            self._live.discard(handle)
            self._cancelled.append(handle.request_id)
            self._cancel_guard(work)

    def _leave(self, work: Work) -> None:
        assert work.handle is not None
        # No longer this batch's to cancel on the way out: it is paid for, and the rerun
        # fetches it by the id its "submitted" line records.
        self._live.discard(work.handle)
        if work.handle.request_id not in self._left:
            self._left.append(work.handle.request_id)
