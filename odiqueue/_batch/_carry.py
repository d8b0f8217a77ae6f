"""One item's way through a batch: submit, follow, save, record; or fail, or start over.

Each step is one method of :class:`Carrier`, in the order a job takes them; the engine
runs one ``carry`` per worker. Every step records what it did in the manifest before the
next one can pay for anything, and a failure becomes the item's :class:`Outcome` (only a
fatal one, a bad key or no credits, stops new submissions, through :attr:`Carrier.fatal`).
"""

from __future__ import annotations

import contextlib
import logging
import random
from typing import TYPE_CHECKING, Final

import anyio

from odiqueue import _backoff, _wire
from odiqueue._batch._budget import Budget
from odiqueue._batch._jobs import LiveJobs, Work
from odiqueue._batch._manifest import Journal, failure_fields
from odiqueue._batch._notfound import Unknown
from odiqueue._batch._patience import submit_patiently
from odiqueue._batch._poll import Poller
from odiqueue._batch._progress import Stage, Tally
from odiqueue._batch._save import Collector
from odiqueue._batch._stop import Stopper
from odiqueue._batch._throttle import RateLimiter
from odiqueue._config import BatchOptions
from odiqueue._errors import (
    PERMANENT_ERROR_TYPES,
    BudgetExceededError,
    ContentPolicyError,
    DeadlineExceededError,
    ImageDownloadError,
    InvalidRequestError,
    JobCancelledError,
    JobError,
    JobFailedError,
    NotFoundError,
    OdiqueueError,
    OutputFileError,
    SubmissionUncertainError,
)
from odiqueue._models import JobStatus, Outcome, Queued, Succeeded, failure_of

if TYPE_CHECKING:
    from odiqueue._client import AsyncClient

__all__ = ["Carrier"]

log = logging.getLogger("odiqueue")

#: Errors after which the job is over on the server: a rerun submits the item again.
_JOB_ENDED: Final = (JobFailedError, JobCancelledError, DeadlineExceededError, NotFoundError)


class Carrier:
    """Carries a batch's items one job each, with the batch's shared parts."""

    def __init__(
        self,
        client: AsyncClient,
        options: BatchOptions,
        *,
        journal: Journal,
        live: LiveJobs,
        poller: Poller,
        collector: Collector,
        rate: RateLimiter,
        tally: Tally,
        budget: Budget,
        stopper: Stopper,
    ) -> None:
        self._client = client
        self._options = options
        self._journal = journal
        self._live = live
        self._poller = poller
        self._collector = collector
        self._rate = rate
        self._tally = tally
        self._budget = budget
        self._stopper = stopper
        self._rng = random.Random()
        #: The error that stopped new submissions (a bad key, no credits, no manifest).
        self.fatal: OdiqueueError | None = None

    async def carry(self, work: Work) -> Outcome:
        """Take ``work`` from submit to its outcome: saved, failed, or left to a rerun."""
        options = self._options
        unknown: Unknown | None = None  # a spell of 404s for a job this run created
        while True:
            if work.handle is None:
                if self.fatal is not None:
                    self._shift(work, "failed")
                    return work.outcome(error=self.fatal)
                try:
                    await self._submit(work)
                except OdiqueueError as exc:
                    if not isinstance(exc, (SubmissionUncertainError, BudgetExceededError)):
                        self._budget.give_back(work.request, work.estimate)  # no job, no bill
                    return self._fail(work, exc)
                finally:
                    self._tally.cost = self._budget.cost
                if self._stopper.requested:
                    await self._stopper.settle(work)
            assert work.handle is not None
            try:
                with self._deadline(work):
                    status = await self._follow(work)
            except TimeoutError:
                cancelled, finished = await self._live.past_deadline(work.handle, work.key)
                if finished is None:
                    # Only a cancel the server confirmed ends the job: one it never heard
                    # of may still finish (and be billed), so a rerun must fetch it.
                    return self._fail(
                        work,
                        DeadlineExceededError(
                            f"the job did not finish within {options.deadline}s",
                            request_id=work.handle.request_id,
                        ),
                        ended=cancelled,
                    )
                status = finished
            except NotFoundError as exc:
                if self._start_over(work, exc):
                    continue
                unknown = unknown or Unknown(_backoff.now())
                found = await self._recheck(work, unknown)
                if isinstance(found, Outcome):
                    return found
                if not found.terminal or isinstance(found, Succeeded):
                    continue  # followed again, through the response URL, for the images
                status = found
            except OdiqueueError as exc:
                return self._fail(work, exc)
            self._live.discard(work.handle)
            if isinstance(status, Succeeded):
                # The job is done and paid for, and some of its images may be saved already:
                # unless it turns out to have no image at all, a failure here leaves its
                # "submitted" line the last word, so a rerun fetches its result again.
                try:
                    with self._deadline(work):
                        return await self._collect(work)
                except TimeoutError:
                    # The job is done and paid for: a rerun fetches its images by id.
                    late = DeadlineExceededError(
                        f"the job's images were not saved within {options.deadline}s",
                        request_id=work.handle.request_id,
                    )
                    return self._fail(work, late, ended=False)
                except NotFoundError as exc:
                    if work.inherited:
                        return self._fail(work, exc, ended=False)
                    unknown = unknown or Unknown(_backoff.now())
                    found = await self._recheck(work, unknown)
                    if isinstance(found, Outcome):
                        return found
                    continue  # its result, asked for again
                except JobError as exc:
                    return self._fail(work, exc)
                except ImageDownloadError as exc:
                    if exc.status in (404, 410) and self._start_over(work, exc):
                        continue
                    return self._fail(work, exc, ended=False)
                except OdiqueueError as exc:
                    return self._fail(work, exc, ended=False)
                except OSError as exc:
                    return self._fail(
                        work,
                        OutputFileError(str(exc), request_id=work.handle.request_id),
                        ended=False,
                    )
            error = failure_of(status)
            assert error is not None  # a terminal status that is not Succeeded
            if isinstance(error, JobCancelledError) and self._start_over(work, error):
                continue  # most likely cancelled by the run that was interrupted
            if (
                isinstance(error, JobFailedError)
                and error.transient
                and work.attempts <= options.max_job_retries
            ):
                self._journal.write("failed", work.key, **failure_fields(error, permanent=False))
                log.info("item %s: %s; submitting again", work.key, error)
                self._tally.bump("retried")
                self._shift(work, "waiting")
                work.handle = None
                continue
            return self._fail(work, error)

    def _deadline(self, work: Work) -> contextlib.AbstractContextManager[object]:
        """The job's deadline (``options.deadline`` seconds from its submission), over its
        polls and its downloads alike. Without a deadline, no cancel scope: one less per job
        on the hot path."""
        deadline = self._options.deadline
        if deadline is None or work.submitted_at is None:
            return contextlib.nullcontext()
        return anyio.fail_at(work.submitted_at + deadline)

    async def _recheck(self, work: Work, unknown: Unknown) -> JobStatus | Outcome:
        """After a 404 for a job this run created: its status once the server knows it
        again, else the item's outcome, the job left to a rerun (by id, never submitted
        again)."""
        assert work.handle is not None
        try:
            found = await unknown.recheck(self._client, work.handle, self._rng)
        except OdiqueueError as exc:
            return self._fail(work, exc, ended=False)
        if found is None:
            timeout = self._client.retry_policy.timeout
            return self._fail(work, unknown.given_up(work.handle, timeout), ended=False)
        return found

    def _manifest_failed(self) -> OutputFileError:
        """Stop new submissions: what cannot be recorded must not be paid for."""
        error = OutputFileError(
            f"cannot write the manifest ({self._journal.failure}): stopped submitting; "
            "the jobs already paid for were followed to the end"
        )
        if self.fatal is None:
            self.fatal = error
        return error

    def _start_over(self, work: Work, why: OdiqueueError) -> bool:
        """Drop an earlier run's job whose images can no longer come (it expired, its
        images did, or it was cancelled), so that the item is submitted again. Never a job
        of this run: that would pay again and again for the same failure."""
        if not work.inherited or work.handle is None:
            return False
        log.warning(
            "item %s: earlier job can no longer deliver (%s); submitting again", work.key, why
        )
        self._live.discard(work.handle)
        work.handle = None
        return True

    async def _submit(self, work: Work) -> None:
        if self._stopper.requested:
            await self._stopper.drop(work)  # a resubmit, or a start-over: not any more
        work.estimate = self._budget.take(work.request)  # or BudgetExceededError
        try:
            await self._rate.acquire()
        except BaseException:
            self._budget.give_back(work.request, work.estimate)  # dropped by a stop: no job
            raise
        # From here the submit goes through even if a graceful stop comes meanwhile: a
        # POST cut off has an unknown fate (see ``Stopper.request``).
        work.posting = True
        try:
            await self._post(work)
        finally:
            work.posting = False

    async def _post(self, work: Work) -> None:
        work.attempts += 1
        work.inherited = False
        if not self._journal.write("intent", work.key, attempt=work.attempts):
            raise self._manifest_failed()  # nothing is paid for that could not be recorded
        handle = await submit_patiently(
            self._client,
            work.request,
            self._rate,
            key=work.key,
            stopped=lambda: self.fatal,
            rng=self._rng,
        )
        recorded = self._journal.write(
            "submitted",
            work.key,
            attempt=work.attempts,
            request_id=handle.request_id,
            status_url=handle.status_url,
            response_url=handle.response_url,
            cancel_url=handle.cancel_url,
            request=_wire.request_to_json(work.request),
            estimated_cost=work.estimate,
        )
        if not recorded:
            log.error(
                "item %s: job %s is paid for but not in the manifest (it is followed now; a "
                "rerun sees only that a submit may have been made, and reports the item "
                "uncertain: keep this id)",
                work.key,
                handle.request_id,
            )
            self._manifest_failed()
        work.handle = handle
        work.submitted_at = _backoff.now()
        self._live.add(work.key, handle)
        self._shift(work, "queued")

    async def _follow(self, work: Work) -> JobStatus:
        """Poll the job until it ends (see ``_poll``), keeping its counts and stage."""
        assert work.handle is not None
        assert work.submitted_at is not None

        def on_look(status: JobStatus) -> None:
            work.polls += 1
            self._tally.bump("polls")
            if not status.terminal:
                self._shift(work, "queued" if isinstance(status, Queued) else "running")

        followed = await self._poller.follow(
            work.handle, work.submitted_at, learn=not work.resumed, on_look=on_look
        )
        work.result = followed.result
        work.started_at, work.completed_at = followed.started_at, followed.completed_at
        return followed.status

    async def _collect(self, work: Work) -> Outcome:
        """Save the finished job's images (see ``_save``), then record them."""
        assert work.handle is not None
        handle = work.handle
        result, work.result = work.result, None
        saved = await self._collector.collect(
            handle,
            result,
            template=work.template or self._options.name_template,
            key=work.key,
            request=work.request,
            # Never forced for a resumed job: a file it had put in place just before the
            # process died holds the same bytes and is taken as is (see ``_sink``); any
            # other file at that name is someone's, and is kept.
            overwrite=self._options.overwrite,
            apart=work.keep_apart,
        )
        self._tally.bump("bytes", sum(file.size for file in saved))
        files = [{"name": f.path.name, "size": f.size, "sha256": f.sha256} for f in saved]
        self._journal.write("saved", work.key, request_id=handle.request_id, files=files)
        self._shift(work, "saved")
        log.info(
            "item %s: saved %d image(s) from request %s", work.key, len(saved), handle.request_id
        )
        paths = tuple(file.path for file in saved)
        return work.outcome(paths=paths, saved_at=_backoff.now())

    # --- outcomes and counts -----------------------------------------------------------------

    def _fail(self, work: Work, error: OdiqueueError, *, ended: bool | None = None) -> Outcome:
        """The item's failed outcome. ``ended``: whether its job is over on the server (by
        default, whether ``error`` says so); only then does a rerun submit it again."""
        if error.fatal and self.fatal is None:
            log.error("stopping new submissions: %s", error)
            self.fatal = error
        if ended is None:
            ended = isinstance(error, _JOB_ENDED)
        if work.handle is None and isinstance(error, SubmissionUncertainError):
            # Only the intent line stays, so that resume reports this item as uncertain.
            pass
        elif work.handle is None or ended:
            permanent = isinstance(error, (ContentPolicyError, InvalidRequestError)) or (
                isinstance(error, JobFailedError) and error.error_type in PERMANENT_ERROR_TYPES
            )
            self._journal.write("failed", work.key, **failure_fields(error, permanent))
        else:
            # The job is paid for and may well finish: its "submitted" line stays the last
            # word, so a rerun picks it up by id (and fetches its images) instead of paying
            # again. It is not cancelled either, for the same reason.
            log.warning(
                "item %s: lost track of request %s (%s); run again to fetch it",
                work.key,
                work.handle.request_id,
                error,
            )
        if work.handle is not None:
            self._live.discard(work.handle)
        self._shift(work, "failed")
        # An item a cap kept back is not the job's failure: the summary says it once.
        level = logging.INFO if isinstance(error, BudgetExceededError) else logging.WARNING
        log.log(level, "item %s failed: %s", work.key, error)
        return work.outcome(error=error)

    def _shift(self, work: Work, stage: Stage) -> None:
        if stage != work.stage:
            self._tally.move(work.stage, stage)
            work.stage = stage
