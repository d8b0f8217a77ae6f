"""Following a batch's jobs until each ends: the poll step, on one plan for the batch.

Each look is a request, so a job is looked at only when the plan (``_plan.next_poll``)
says a look is worth one, and sleeps in between without making any. What the looks show
(run times, the queue's pace, when jobs end) feeds the plan of every other job of the
batch. Sleeping jobs are woken early when that changes their plan: all of them when the
first job ends (the batch learns its run times), a queued job when enough of the batch's
jobs have ended for it to have started.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import anyio
import attrs

from odiqueue import _backoff
from odiqueue._batch._plan import (
    BatchKnowledge,
    JobClock,
    next_poll,
    start_from_ends,
    started_by_count,
)
from odiqueue._batch._throttle import take
from odiqueue._models import ImageResult, JobHandle, JobStatus, Queued, Succeeded

if TYPE_CHECKING:
    from odiqueue._client import AsyncClient

__all__ = ["REPLAN", "SCOUTS", "Followed", "Poller"]

#: Seconds between re-plans of a sleeping job's next poll.
REPLAN: Final = 1.0
#: Jobs that poll eagerly while the batch knows nothing of its job durations yet.
SCOUTS: Final = 8


@attrs.frozen
class Followed:
    """How a followed job ended: its terminal status, the images if the last look brought
    them, and when it most likely started and was seen ending."""

    status: JobStatus
    result: ImageResult | None
    started_at: float
    completed_at: float


class Poller:
    """The polling state one batch shares: what it has learned, the poll limit, and the
    events that wake sleeping jobs."""

    def __init__(self, client: AsyncClient, concurrency: int) -> None:
        self._client = client
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._known = BatchKnowledge()
        self._warm = anyio.Event()
        # Queued jobs waiting for the batch's count of ends to reach a mark (the count at
        # which each should have started), as a heap of (mark, tie-breaker, event): an end
        # wakes only the jobs it concerns, however many are queued.
        self._end_waiters: list[tuple[int, int, anyio.Event]] = []
        self._waiter_ids = itertools.count()
        self._scouts = SCOUTS
        self._rng = random.Random()

    async def follow(
        self,
        handle: JobHandle,
        submitted_at: float,
        *,
        learn: bool,
        on_look: Callable[[JobStatus], None],
    ) -> Followed:
        """Poll one job until it ends; ``on_look`` hears every status seen on the way.

        A queued job is asked for its status (which carries its queue position); any other
        is asked for its result, which is the status until it is done and the images once
        it is, saving the separate result request. ``learn`` is false for a job an earlier
        run submitted: its clock starts now, so its run time would mislead the plan.
        """
        clock = JobClock(submitted_at=submitted_at)
        status: JobStatus | None = None
        result: ImageResult | None = None
        scout = self._scouts > 0
        self._scouts -= scout
        known = self._known
        while True:
            await self._wait_for_next_look(clock, status, scout)
            await take(self._limiter)
            try:
                if isinstance(status, Queued):
                    status = await self._client.status(handle)
                else:
                    found = await self._client.result_or_status(handle)
                    if isinstance(found, ImageResult):
                        result, status = found, Succeeded(found.request_id)
                    else:
                        status = found
            finally:
                self._limiter.release()
            now = _backoff.now()
            on_look(status)
            if status.terminal:
                finished = clock.finished_estimate(now)
                self._note_end(finished, now - finished)
                start = clock.started_at() or clock.submitted_at
                if isinstance(status, Succeeded) and learn:
                    known.record(finished - start, now, clock.start_uncertainty(now))
                    if not self._warm.is_set() and known.quantile(0.5) is not None:
                        self._warm.set()
                return Followed(status, result, start, now)
            if (
                isinstance(status, Queued)
                and status.position is not None
                and clock.last_position is not None
                and clock.last_queued_at is not None
            ):
                known.record_queue_move(
                    clock.last_position - status.position,
                    now - clock.last_queued_at,
                    ours=known.ended - clock.ended_at_look,
                )
            if not isinstance(status, Queued) and clock.running_seen_at is None:
                window = start_from_ends(clock, known, now)
                if window is not None:
                    clock.date_start(*window)
            clock.observe(status, now, ended=known.ended)

    def _note_end(self, at: float, margin: float) -> None:
        self._known.record_end(at, margin)
        waiters = self._end_waiters
        while waiters and waiters[0][0] <= self._known.ended:
            heapq.heappop(waiters)[2].set()

    def _end_mark(self, clock: JobClock, status: JobStatus | None) -> anyio.Event | None:
        """An event set once the batch's ends say a queued job should have started."""
        if not isinstance(status, Queued) or status.position is None:
            return None
        event = anyio.Event()
        mark = clock.ended_at_look + status.position + 1
        heapq.heappush(self._end_waiters, (mark, next(self._waiter_ids), event))
        return event

    async def _wait_for_next_look(
        self, clock: JobClock, status: JobStatus | None, scout: bool
    ) -> None:
        """Sleep until the planned moment of the job's next poll.

        The plan is made from the job's last look and redone at least every REPLAN seconds
        (and at once when the batch first learns its run times), so a wait planned on an
        early, rough estimate shrinks as the estimate improves instead of being slept out.
        Re-planning costs no request.

        A queued job also counts the batch's jobs that end: each frees a worker or a place
        ahead of it, so once one more has ended than there were jobs ahead, it has started,
        and is looked at (see ``_plan.start_from_ends``).
        """
        last_look = clock.last_poll_at if clock.last_poll_at is not None else clock.submitted_at
        started = self._end_mark(clock, status)
        policy = self._client.poll_policy
        while True:
            delay = next_poll(clock, status, last_look, self._known, policy, self._rng, scout=scout)
            wait = last_look + delay - _backoff.now()
            if wait <= 0 or started_by_count(clock, status, self._known):
                return
            await _backoff.sleep_until_set(min(wait, REPLAN), started or self._warm)
