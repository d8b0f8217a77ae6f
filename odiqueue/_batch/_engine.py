"""Many jobs at once: submit under limits, poll on one plan, save as each finishes, resumably.

Data flow, ``max_in_flight`` workers in one task group scoped to the ``async with``, each
carrying one item at a time::

    items --(read lazily, by whichever worker is free: ``_items``)--> worker
        worker: ``_admit`` (key, what an earlier run recorded, free file names)
                  -> ``_carry``: [budget, rate limiter] intent line -> POST -> submitted line
                  -> status polls (``_poll``: shared limiter, planned by ``_plan``)
                  -> result -> each image streamed to disk (``_save``, core ``_sink``)
                  -> saved/failed line (``_manifest``)
                  -> Outcome --(bounded stream)--> the caller's ``async for``

One job's failure becomes that job's :class:`Outcome`; it never cancels the others. A fatal
error (bad key, no credits, no permission) stops new submissions, lets the jobs already paid
for finish, then is raised once every outcome has been delivered. So does a bad input item
(a repeated key, an item of the wrong type) or an input iterator that raises.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from odiqueue import _backoff
from odiqueue._batch import _throttle
from odiqueue._batch._admit import Intake
from odiqueue._batch._budget import Budget
from odiqueue._batch._carry import Carrier
from odiqueue._batch._items import Feed
from odiqueue._batch._jobs import LiveJobs
from odiqueue._batch._manifest import Journal
from odiqueue._batch._poll import Poller
from odiqueue._batch._progress import Progress, Tally
from odiqueue._batch._save import Collector
from odiqueue._batch._stop import DEFAULT_STOP_GRACE, Stopper, StopReport
from odiqueue._batch._throttle import RateLimiter
from odiqueue._config import BatchOptions
from odiqueue._errors import (
    ConfigurationError,
)
from odiqueue._models import Item, Outcome
from odiqueue._sink import remove_parts

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from odiqueue._client import AsyncClient

__all__ = ["Batch"]

log = logging.getLogger("odiqueue")


class Batch:
    """A running batch: ``async with`` it, then ``async for`` its outcomes.

    Leaving the ``async with`` early (``break``, an exception, task cancellation, Ctrl-C)
    cancels every unfinished job on the server (unless ``keep_remote``) within
    ``cancel_timeout`` seconds; the manifest keeps everything needed to resume. To stop
    without throwing paid work away, call :meth:`stop` and keep reading the outcomes.
    """

    def __init__(
        self,
        client: AsyncClient,
        items: Iterable[Item] | AsyncIterable[Item],
        out_dir: Path,
        options: BatchOptions,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        if out_dir.exists() and not out_dir.is_dir():
            raise ConfigurationError(f"out_dir {out_dir} exists and is not a folder")
        self._client = client
        self._items = items
        self._out_dir = out_dir
        self._options = options
        self._journal = Journal(out_dir)
        self._send: MemoryObjectSendStream[Outcome]
        self._receive: MemoryObjectReceiveStream[Outcome]
        self._poller = Poller(client, options.poll_concurrency)
        self._collector = Collector(client, out_dir)
        self._rate = RateLimiter(options.submit_rate, options.submit_burst)
        self._rng = random.Random()
        self._live = LiveJobs(client, self._journal, options.cancel_timeout)
        self._stopper = Stopper(client, self._live, keep_remote=options.keep_remote)
        self._tally = Tally(on_progress)
        self._budget = Budget(options, client.model)
        self._bad_input: Exception | None = None
        self._task_group: TaskGroup | None = None
        self._intake = Intake(out_dir, options, self._collector, self._live, self._tally)
        self._carrier = Carrier(
            client,
            options,
            journal=self._journal,
            live=self._live,
            poller=self._poller,
            collector=self._collector,
            rate=self._rate,
            tally=self._tally,
            budget=self._budget,
            stopper=self._stopper,
        )

    # --- the caller's side -----------------------------------------------------------------

    async def __aenter__(self) -> Batch:
        self._tally.started = _backoff.now()
        fresh = not self._options.resume
        states = await anyio.to_thread.run_sync(lambda: self._journal.open(fresh=fresh))
        self._intake.states = states
        self._budget.count_earlier(states)
        self._tally.cost = self._budget.cost
        try:
            # Under the lock no other batch writes here: any part file is a killed run's.
            await anyio.to_thread.run_sync(remove_parts, self._out_dir)
        except BaseException:
            self._journal.close()
            raise
        self._send, self._receive = anyio.create_memory_object_stream[Outcome](
            self._options.max_in_flight
        )
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._run)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task_group is not None
        # Whatever ended the block (the end of the outcomes, a break, an error, a cancel),
        # the jobs still running are stopped here. The caller's own exception is theirs to
        # see, unwrapped: only errors raised inside the pipeline come from the task group.
        self._task_group.cancel_scope.cancel()
        try:
            await self._task_group.__aexit__(None, None, None)
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        finally:
            if not self._options.keep_remote:
                with anyio.CancelScope(shield=True):
                    await self._live.cancel_all()
            self._journal.close()
            self._receive.close()

    def __aiter__(self) -> AsyncIterator[Outcome]:
        if self._task_group is None:
            raise RuntimeError(
                "use `async with client.generate_many(...) as outcomes:` and then "
                "`async for outcome in outcomes:`"
            )
        return self

    async def __anext__(self) -> Outcome:
        try:
            return await _throttle.receive(self._receive)
        except anyio.EndOfStream:
            if self._carrier.fatal is not None:
                raise self._carrier.fatal from None
            if self._bad_input is not None:
                raise self._bad_input from None
            raise StopAsyncIteration from None

    @property
    def progress(self) -> Progress:
        """The batch's counts right now."""
        return self._tally.snapshot()

    def stop(self, grace: float = DEFAULT_STOP_GRACE) -> None:
        """Stop gracefully: submit nothing more, and end the outcomes once the jobs in
        flight are dealt with, without paying for anything twice.

        Items not yet submitted are dropped (no outcome). Jobs the server still holds in
        its queue are cancelled (never started, so not billed), unless ``keep_remote``.
        Running jobs are followed for up to ``grace`` seconds and saved if they finish;
        those still running then are left on the server, not cancelled: the manifest keeps
        their ids, so running the batch again collects them instead of submitting them
        again. :attr:`stopped` says what was cancelled and what was left. Leaving the
        ``async with`` before that (a second Ctrl-C) cancels the rest as usual.
        Calling it again changes nothing. Call it from the task that reads the outcomes or
        another task of the same event loop (e.g. a signal handler's).
        """
        if not grace >= 0:
            raise ValueError(f"grace must be >= 0 seconds, got {grace!r}")
        if self._task_group is None:
            raise RuntimeError("stop() is for a batch inside its `async with`")
        if self._stopper.requested:
            return
        log.info("stopping: no more submits; waiting up to %gs for running jobs", grace)
        self._stopper.request()
        self._task_group.start_soon(self._stopper.run, grace)

    @property
    def stopped(self) -> StopReport | None:
        """What :meth:`stop` did (so far): None when it was not called."""
        return self._stopper.report

    # --- feeding ---------------------------------------------------------------------------

    async def _run(self) -> None:
        # One worker per in-flight slot, each carrying one item at a time from reading to
        # its delivered outcome: the bound without a task or a semaphore trip per job.
        feed = Feed(self._items)
        async with self._send, anyio.create_task_group() as workers:
            for _ in range(self._options.max_in_flight):
                workers.start_soon(self._worker, feed, self._send.clone())

    async def _worker(self, feed: Feed, send: MemoryObjectSendStream[Outcome]) -> None:
        # The worker is busy until the outcome is handed over: a caller that stops reading
        # also stops new submissions, so nothing piles up unpaid-for in memory.
        stopper = self._stopper
        async with send:
            while self._carrier.fatal is None and self._bad_input is None and not stopper.requested:
                with stopper.guard() as guard:
                    try:
                        taken = await feed.next()
                        if taken is None:
                            return
                        work = self._intake.take(*taken)
                    except Exception as exc:
                        # A bad item (or an input that raises) stops the reading, not the
                        # jobs already paid for: they finish and are delivered, then it is
                        # raised.
                        self._bad_input = self._bad_input or exc
                        return
                    if not isinstance(work, Outcome):
                        guard.work = work
                        self._tally.bump("waiting")
                        work = await self._carrier.carry(work)
                if guard.scope.cancelled_caught:
                    return  # dropped by a graceful stop (see ``_stop``)
                self._tally.changed()
                await _throttle.send(send, work)


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one real error of a task group, or the group when there are several."""
    errors: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        error = stack.pop()
        if isinstance(error, BaseExceptionGroup):
            stack.extend(error.exceptions)
        elif not isinstance(error, anyio.get_cancelled_exc_class()):
            errors.append(error)
    return errors[0] if len(errors) == 1 else group
