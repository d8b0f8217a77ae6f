"""A batch's jobs: one item's work in progress, and the jobs paid for and not finished.

One item on its way through a batch: what the pipeline knows of it, and its outcome.

A batch's live jobs: paid for and not finished, and how they are cancelled.

Leaving a batch early cancels them all (unless ``keep_remote``), each shielded and within
``cancel_timeout``, so an interrupted batch stops paying for work nobody will collect. A
job past its deadline is cancelled alone. A job the server confirms cancelled gets a
"cancelled" manifest line; one it could not be told about keeps its "submitted" line, so
a rerun picks it up by id.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from odiqueue._batch._manifest import Journal
from odiqueue._batch._progress import Stage
from odiqueue._errors import OdiqueueError
from odiqueue._models import CancelOutcome, ImageResult, JobHandle, JobStatus, Outcome
from odiqueue._request import ImageRequest

__all__ = ["LiveJobs", "Work"]


@attrs.define
class Work:
    """One item's state between reading it and delivering its outcome (mutable, owned by
    the one worker that carries it)."""

    key: str
    index: int
    request: ImageRequest
    handle: JobHandle | None = None
    resumed: bool = False
    #: Whether ``handle`` is an earlier run's job (not yet replaced by a submit of this run).
    inherited: bool = False
    #: Whether another item of this run holds one of its file names (saved beside it).
    keep_apart: bool = False
    uncertain: bool = False
    #: Whether its submit is on the wire: a graceful stop lets it through, to know the job.
    posting: bool = False
    attempts: int = 0
    polls: int = 0
    submitted_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    stage: Stage = "waiting"
    #: The estimated cost of its current job (None: the price table cannot say).
    estimate: float | None = None
    template: str | None = None
    result: ImageResult | None = None

    def outcome(self, **fields: Any) -> Outcome:
        """The item's outcome: what the work knows, plus ``fields`` (paths or error)."""
        return Outcome(
            key=self.key,
            index=self.index,
            request=self.request,
            request_id=self.handle.request_id if self.handle else None,
            attempts=self.attempts,
            polls=self.polls,
            submitted_at=self.submitted_at,
            started_at=self.started_at,
            completed_at=self.completed_at,
            resumed=self.resumed,
            uncertain=self.uncertain,
            estimated_cost=self.estimate,
            **fields,
        )


if TYPE_CHECKING:
    from odiqueue._client import AsyncClient

__all__ = ["LiveJobs"]

log = logging.getLogger("odiqueue")


class LiveJobs:
    """The jobs a batch has submitted (or re-attached) that have not ended yet."""

    def __init__(self, client: AsyncClient, journal: Journal, cancel_timeout: float) -> None:
        self._client = client
        self._journal = journal
        self._timeout = cancel_timeout
        self._jobs: dict[str, tuple[str, JobHandle]] = {}

    def add(self, key: str, handle: JobHandle) -> None:
        """A job of item ``key`` is now paid for and running."""
        self._jobs[handle.request_id] = (key, handle)

    def discard(self, handle: JobHandle) -> None:
        """The job ended, or is no longer this batch's to cancel."""
        self._jobs.pop(handle.request_id, None)

    async def cancel_all(self) -> None:
        """Cancel every live job on the server, all at once, within the cancel timeout."""
        if not self._jobs:
            return
        live, self._jobs = list(self._jobs.values()), {}
        log.info("cancelling %d unfinished job(s) on the server", len(live))
        with anyio.move_on_after(self._timeout):
            async with anyio.create_task_group() as group:
                for key, handle in live:
                    group.start_soon(self.cancel, handle, key)

    async def cancel(self, handle: JobHandle, key: str) -> CancelOutcome | None:
        """Cancel one job (shielded, bounded); None when the server could not be told."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(self._timeout):
            try:
                outcome = await self._client.cancel(handle)
            except OdiqueueError as exc:
                log.warning("could not cancel request %s: %s", handle.request_id, exc)
                return None
            if outcome is CancelOutcome.REQUESTED:
                self._journal.write("cancelled", key, request_id=handle.request_id)
            return outcome
        return None

    async def past_deadline(self, handle: JobHandle, key: str) -> tuple[bool, JobStatus | None]:
        """Cancel a job past its deadline: whether the server confirmed the cancel, and the
        job's final status if it had finished after all."""
        outcome = await self.cancel(handle, key)
        if outcome is not CancelOutcome.ALREADY_COMPLETED:
            return outcome is CancelOutcome.REQUESTED, None
        try:
            status = await self._client.status(handle)
        except OdiqueueError:
            return False, None
        return False, status if status.terminal else None
