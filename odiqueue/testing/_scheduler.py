"""The job table: a FIFO queue in front of a pool of workers, computed lazily from timestamps.

No task or timer runs per job. Each job knows its run time; :meth:`JobTable.advance` replays
everything that happened up to "now" in time order: it pops the finished jobs off a heap of
completion times and starts the next queued job at the exact moment a worker freed, which may
lie in the past. Every request calls it first, so what a reply says is exact and costs
O(log n) per event, which lets a benchmark push ten thousand jobs through two cores.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import deque
from typing import TYPE_CHECKING, Any

from odiqueue.testing._params import read_directives
from odiqueue.testing._state import JobRecord, Stats

if TYPE_CHECKING:
    from collections.abc import Mapping

    from odiqueue.testing._config import EmulatorConfig

__all__ = ["JobTable"]


class JobTable:
    """All jobs of one emulator, their queue, their workers and the credits they cost."""

    def __init__(self, config: EmulatorConfig, stats: Stats) -> None:
        self._config = config
        self._stats = stats
        self._workers = config.workers
        self._busy = 0
        # (completion time, start order, job); a cancelled job leaves a stale entry behind.
        self._completions: list[tuple[float, int, JobRecord]] = []
        self._starts = 0
        # Cancelled jobs stay in the deque until they reach its head; _cancelled_seqs keeps
        # their sorted seqs so queue positions can skip them in O(log n).
        self._waiting: deque[JobRecord] = deque()
        self._cancelled_seqs: list[int] = []
        self._next_seq = 0
        self._head_seq = 0
        # Separate streams, so turning failures on does not change the drawn durations.
        self._durations = random.Random(f"{config.seed}:durations")
        self._failures = random.Random(f"{config.seed}:failures")
        self._failure_rates = tuple(sorted(config.faults.job_failure_rates.items()))
        stats.credits_remaining = config.credits

    @property
    def stats(self) -> Stats:
        """The counters this table keeps up to date."""
        return self._stats

    def get(self, request_id: str) -> JobRecord | None:
        """The job with this id, or None."""
        return self._stats.jobs.get(request_id)

    def charge(self, cost: int) -> bool:
        """Take ``cost`` credits; False (and nothing taken) when there are not enough."""
        left = self._stats.credits_remaining
        if left is None:
            return True
        if left < cost:
            return False
        self._stats.credits_remaining = left - cost
        return True

    def submit(self, request_id: str, model: str, params: dict[str, Any], now: float) -> JobRecord:
        """Create a job at ``now`` and start it if a worker is free, else queue it."""
        self.advance(now)
        directives = read_directives(params["prompt"])
        emulated = directives.duration
        if emulated is None:
            emulated = self._draw_duration()
        job = JobRecord(
            request_id=request_id,
            model=model,
            params=params,
            submitted_at=now,
            emulated_seconds=float(emulated),
            run_seconds=emulated * self._config.time_scale,
            planned_error_type=directives.fail or self._draw_failure(),
        )
        stats = self._stats
        stats.jobs[request_id] = job
        stats.jobs_created += 1
        stats.jobs_by_model[model] += 1
        stats.active_jobs += 1
        stats.peak_active_jobs = max(stats.peak_active_jobs, stats.active_jobs)
        if self._workers is None or self._busy < self._workers:
            # advance() has already filled every free worker, so nothing is waiting here.
            self._start(job, now)
        else:
            job.seq = self._next_seq
            self._next_seq += 1
            self._waiting.append(job)
        return job

    def queue_position(self, job: JobRecord) -> int:
        """How many jobs still wait ahead of a queued job (0 = next to start)."""
        skipped = bisect.bisect_left(self._cancelled_seqs, job.seq)
        return job.seq - self._head_seq - skipped

    def cancel(self, job: JobRecord, now: float) -> bool:
        """End a queued or running job as CANCELED at ``now``; False if it already ended."""
        self.advance(now)
        if job.completed_at is not None:
            return False
        job.cancelled = True
        self._finish(job, now, "CANCELED")
        if job.started_at is None:
            bisect.insort(self._cancelled_seqs, job.seq)
        else:
            self._busy -= 1
            self._stats.running_jobs = self._busy
            self._fill(now)
        return True

    def advance(self, now: float) -> None:
        """Replay every completion up to ``now``, starting queued jobs as workers free up."""
        completions = self._completions
        while completions and completions[0][0] <= now:
            at, _, job = heapq.heappop(completions)
            if job.completed_at is not None:
                continue  # cancelled while running
            self._finish(job, at, job.planned_error_type)
            self._busy -= 1
            self._stats.running_jobs = self._busy
            if self._waiting:
                self._fill(at)

    def _fill(self, at: float) -> None:
        waiting = self._waiting
        while waiting and (self._workers is None or self._busy < self._workers):
            job = waiting.popleft()
            self._head_seq = job.seq + 1
            if job.cancelled:
                # Every seq before this one has left the deque, so it is the smallest.
                self._cancelled_seqs.pop(0)
                continue
            self._start(job, at)

    def _start(self, job: JobRecord, at: float) -> None:
        job.started_at = at
        self._busy += 1
        stats = self._stats
        stats.running_jobs = self._busy
        stats.peak_running_jobs = max(stats.peak_running_jobs, self._busy)
        self._starts += 1
        heapq.heappush(self._completions, (at + job.run_seconds, self._starts, job))

    def _finish(self, job: JobRecord, at: float, error_type: str | None) -> None:
        job.completed_at = at
        job.error_type = error_type
        self._stats.active_jobs -= 1

    def _draw_duration(self) -> float:
        median = self._config.job_seconds
        sigma = self._config.duration_sigma
        if sigma > 0 and median > 0:
            return self._durations.lognormvariate(math.log(median), sigma)
        return median

    def set_failure_rates(self, rates: Mapping[str, float]) -> None:
        """Use these job failure rates for jobs submitted from now on."""
        self._failure_rates = tuple(sorted(rates.items()))

    def _draw_failure(self) -> str | None:
        if not self._failure_rates:
            return None
        draw = self._failures.random()
        for error_type, rate in self._failure_rates:
            if draw < rate:
                return error_type
            draw -= rate
        return None
