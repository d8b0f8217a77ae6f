"""When to poll each job of a batch: pure maths over what the batch has learned so far.

A single job's poll (``_backoff.poll_delay``) can only back off. A batch knows more: how
long its finished jobs ran, and how fast jobs leave the server's queue. With that, a job
far back in the queue sleeps until about when it should start running, and a running job
sleeps until the earliest it is likely to end, then polls in fine steps, so the status
requests cluster around the moment it completes. Until enough jobs have finished, the plain
backoff applies.

Nothing here sleeps or reads a clock: times come in as arguments, randomness as a
``random.Random``, so tests check the numbers directly.
"""

from __future__ import annotations

import bisect
import random
from collections import deque
from typing import Final

import attrs

from odiqueue._backoff import poll_delay
from odiqueue._config import PollPolicy
from odiqueue._models import JobStatus, Queued, Running

__all__ = ["BatchKnowledge", "JobClock", "next_poll"]

#: Finished jobs needed before their durations are trusted.
MIN_SAMPLES: Final = 3
#: Fine polling step near the expected end, as a fraction of the median duration.
FINE_STEP: Final = 0.06
#: The duration quantile at which fine polling starts.
EARLY_QUANTILE: Final = 0.1
#: How much longer than ``PollPolicy.maximum`` a job with a known queue position may sleep.
QUEUE_WAIT_FACTOR: Final = 6.0
_WINDOW: Final = 256


@attrs.define
class BatchKnowledge:
    """Run durations and completion times of the batch's finished jobs (bounded memory)."""

    _durations: list[float] = attrs.field(factory=list)
    _recent: deque[float] = attrs.field(factory=lambda: deque(maxlen=_WINDOW))
    _finished: deque[float] = attrs.field(factory=lambda: deque(maxlen=64))

    def record(self, duration: float, finished_at: float) -> None:
        """Learn one finished job: its estimated run time and when it finished."""
        duration = max(duration, 0.0)
        if len(self._recent) == self._recent.maxlen:
            self._durations.remove(self._recent[0])
        self._recent.append(duration)
        bisect.insort(self._durations, duration)
        self._finished.append(finished_at)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile of recent run durations, or None with too few samples."""
        if len(self._durations) < MIN_SAMPLES:
            return None
        return self._durations[min(int(q * len(self._durations)), len(self._durations) - 1)]

    def throughput(self) -> float | None:
        """Jobs finished per second recently, or None when unknown."""
        if len(self._finished) < MIN_SAMPLES:
            return None
        span = self._finished[-1] - self._finished[0]
        return (len(self._finished) - 1) / span if span > 0 else None


@attrs.define
class JobClock:
    """What one job's polls have shown, on the monotonic clock."""

    submitted_at: float
    polls: int = 0
    last_poll_at: float | None = None
    last_queued_at: float | None = None
    running_seen_at: float | None = None

    def observe(self, status: JobStatus, now: float) -> None:
        """Record one status reply received at ``now``."""
        self.polls += 1
        if isinstance(status, Queued):
            self.last_queued_at = now
        elif self.running_seen_at is None:
            self.running_seen_at = now
        self.last_poll_at = now

    def started_at(self) -> float | None:
        """Best estimate of when the job started running (midway through the gap it did)."""
        if self.running_seen_at is None:
            return None
        before = self.last_queued_at if self.last_queued_at is not None else self.submitted_at
        return (before + self.running_seen_at) / 2

    def finished_estimate(self, seen_done_at: float) -> float:
        """Best estimate of when the job completed, given the poll that first saw it done."""
        before = self.last_poll_at if self.last_poll_at is not None else self.submitted_at
        return (before + seen_done_at) / 2


def next_poll(
    clock: JobClock,
    status: JobStatus | None,
    now: float,
    known: BatchKnowledge,
    policy: PollPolicy,
    rng: random.Random,
) -> float:
    """Seconds to wait before the job's next status request."""
    median = known.quantile(0.5)
    if median is None:
        return poll_delay(clock.polls, status, policy, rng)
    step = max(FINE_STEP * median, 0.01)
    early = known.quantile(EARLY_QUANTILE) or median
    if isinstance(status, Queued):
        rate = known.throughput()
        if rate is None or status.position is None:
            return poll_delay(clock.polls, status, policy, rng)
        # It starts after the jobs ahead of it (and itself) leave the queue, and cannot end
        # before the shortest likely run after that.
        wait = (status.position + 1) / rate + early
        return _spread(min(wait, policy.maximum * QUEUE_WAIT_FACTOR), policy, rng)
    start = clock.started_at()
    if isinstance(status, Running) and start is not None:
        until_early = start + early - now
        if until_early > step:
            return _spread(min(until_early, policy.maximum), policy, rng)
        # Past the early mark, poll in steps that grow with the job's age, so an outlier
        # that runs ten times the median costs a few more polls, not hundreds.
        return min(max(step, FINE_STEP * (now - start)), policy.maximum)
    return poll_delay(clock.polls, status, policy, rng)


def _spread(delay: float, policy: PollPolicy, rng: random.Random) -> float:
    # Jitter only shortens a long wait: overshooting the expected moment costs lag.
    return max(0.0, delay * (1 - rng.uniform(0, policy.jitter)))
