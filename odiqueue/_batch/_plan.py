"""When to poll each job of a batch: pure maths over what the batch has learned so far.

A single job's poll (``_backoff.poll_delay``) can only back off. A batch knows more: how
long its finished jobs ran, and how fast jobs leave the server's queue. With that, a job
far back in the queue sleeps until about when it should start running, and a running job
sleeps until the earliest it is likely to end, then polls in fine steps, so the status
requests cluster around the moment it completes. Until the first job has finished, the plain
backoff applies (faster for a few scout jobs).

Nothing here sleeps or reads a clock: times come in as arguments, randomness as a
``random.Random``, so tests check the numbers directly.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections import deque
from typing import Final

import attrs

from odiqueue._backoff import poll_delay
from odiqueue._config import PollPolicy
from odiqueue._models import JobStatus, Queued, Running

__all__ = ["BatchKnowledge", "JobClock", "next_poll", "start_from_ends", "started_by_count"]

#: Finished jobs needed before their durations are used. One is enough to plan on: the first
#: job to finish is the shortest of its wave, so the plan it gives polls a little too often,
#: never too late, and the estimate sharpens with every further job.
MIN_SAMPLES: Final = 1
#: Queue places seen cleared before the queue's pace is trusted.
MIN_MOVES: Final = 3
#: Finished jobs needed before the rate at which they finish is trusted (a rate from a
#: handful of completions can be off several times over, and a queued job sleeps on it).
MIN_RATE_SAMPLES: Final = 8
#: The polling step near a job's end, as a fraction of the median run time: the detection
#: lag of a job that ends before the late mark never exceeds it.
FINE_STEP: Final = 0.08
#: Run times beyond this quantile count as outliers (steps grow with age).
LATE_QUANTILE: Final = 0.98
#: ...but never below this many median run times, so that a handful of early samples (whose
#: largest is the "late" mark) does not turn the rest of the first wave into outliers.
LATE_FLOOR: Final = 1.6
#: The duration quantile at which fine polling starts.
EARLY_QUANTILE: Final = 0.04
#: The share of a queued job's expected wait it sleeps before looking again.
QUEUE_AIM: Final = 0.6
#: A queued job looks at least once per this many median run times, whatever the estimate.
QUEUE_LOOK: Final = 1.5
#: How much sooner than ``PollPolicy.initial`` a scout job first polls...
SCOUT_FACTOR: Final = 0.1
#: ...and how fast its interval grows: slowly, because until the first job ends nothing is
#: known, and the look that sees that end wakes every other job's plan.
SCOUT_MULTIPLIER: Final = 1.25
#: When the queue is the batch's own (it moves only as the batch's jobs end), a queued job
#: is woken by those ends and polled once enough have ended for it to have started: its
#: timed look is then only a backstop, this share of the way past its expected start...
QUEUE_BACKSTOP: Final = 1.5
#: ...and at most this many median run times away.
QUEUE_BACKSTOP_LOOK: Final = 10.0
#: A queue counts as the batch's own when the batch's ends explain this share of its moves.
OWN_QUEUE_SHARE: Final = 0.8
#: A start seen within this fraction of the median is sharp enough to learn from.
SHARP_START: Final = 0.25
_WINDOW: Final = 256
#: Ends remembered for dating starts (a queued job counts back at most this far).
_ENDS_KEPT: Final = 4096


@attrs.define
class BatchKnowledge:
    """Run durations and completion times of the batch's finished jobs (bounded memory)."""

    _durations: list[float] = attrs.field(factory=list)
    _recent: deque[float] = attrs.field(factory=lambda: deque(maxlen=_WINDOW))
    _finished: deque[float] = attrs.field(factory=lambda: deque(maxlen=64))
    _moves: deque[tuple[int, float, int]] = attrs.field(factory=lambda: deque(maxlen=_WINDOW))
    _moved: int = 0
    _moving: float = 0.0
    _ours: int = 0
    _ends: deque[tuple[float, float]] = attrs.field(factory=lambda: deque(maxlen=_ENDS_KEPT))
    #: How many of the batch's jobs have been seen ending (succeeded, failed or cancelled).
    ended: int = 0

    def record(self, duration: float, finished_at: float, uncertainty: float = 0.0) -> None:
        """Learn one finished job: its estimated run time and when it finished.

        A run time whose start was seen only within a wide window (``uncertainty`` seconds)
        would blur the low quantiles the plan rests on, so once the batch knows its median
        such samples count only towards the completion rate.
        """
        self._finished.append(finished_at)
        median = self.quantile(0.5)
        if median is not None and uncertainty > SHARP_START * median:
            return
        duration = max(duration, 0.0)
        if len(self._recent) == self._recent.maxlen:
            self._durations.remove(self._recent[0])
        self._recent.append(duration)
        bisect.insort(self._durations, duration)

    def record_end(self, at: float, margin: float) -> None:
        """Count one of the batch's jobs ending, most likely at ``at``, give or take
        ``margin`` seconds. Every end frees a worker or a place in the queue."""
        self.ended += 1
        self._ends.append((at, margin))

    def ends_since(self, ended: int) -> list[tuple[float, float]] | None:
        """The ends counted since the count was ``ended`` (None if no longer remembered)."""
        since = self.ended - ended
        if since > len(self._ends):
            return None
        return list(itertools.islice(self._ends, len(self._ends) - since, None))

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile of recent run durations, or None with too few samples."""
        if len(self._durations) < MIN_SAMPLES:
            return None
        return self._durations[min(int(q * len(self._durations)), len(self._durations) - 1)]

    def record_queue_move(self, positions: int, seconds: float, ours: int = 0) -> None:
        """Learn that a queued job moved ``positions`` places forward in ``seconds``, while
        ``ours`` of the batch's own jobs ended."""
        if seconds <= 0 or positions < 0:
            return
        if len(self._moves) == self._moves.maxlen:
            old_positions, old_seconds, old_ours = self._moves[0]
            self._moved -= old_positions
            self._moving -= old_seconds
            self._ours -= old_ours
        ours = min(max(ours, 0), positions)
        self._moves.append((positions, seconds, ours))
        self._moved += positions
        self._moving += seconds
        self._ours += ours

    def queue_is_ours(self) -> bool:
        """Whether the queue moves only as the batch's own jobs end (no other tenants seen),
        so that counting those ends tells a queued job when it starts."""
        return self._moved >= MIN_RATE_SAMPLES and self._ours >= OWN_QUEUE_SHARE * self._moved

    def queue_rate(self) -> float | None:
        """Queue positions the server clears per second, from queued jobs' own moves."""
        if self._moved < MIN_MOVES or self._moving <= 0:
            return None
        return self._moved / self._moving

    def throughput(self) -> float | None:
        """Jobs finished per second recently, or None when unknown."""
        if len(self._finished) < MIN_RATE_SAMPLES:
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
    last_position: int | None = None
    running_seen_at: float | None = None
    #: The batch's count of ended jobs when the job was last seen queued.
    ended_at_look: int = 0
    #: A window narrower than the looks' in which the job is known to have started.
    start_window: tuple[float, float] | None = None

    def observe(self, status: JobStatus, now: float, ended: int = 0) -> None:
        """Record one status reply received at ``now``; ``ended`` is the batch's count of
        ended jobs at that moment."""
        self.polls += 1
        if isinstance(status, Queued):
            self.last_queued_at = now
            self.last_position = status.position
            self.ended_at_look = ended
        elif self.running_seen_at is None:
            self.running_seen_at = now
        self.last_poll_at = now

    def started_at(self) -> float | None:
        """Best estimate of when the job started running: the middle of the gap between the
        last poll that saw it queued (or its submission) and the first that saw it running,
        or of the narrower window :meth:`date_start` gave."""
        if self.running_seen_at is None:
            return None
        if self.start_window is not None:
            return sum(self.start_window) / 2
        before = self.last_queued_at if self.last_queued_at is not None else self.submitted_at
        return (before + self.running_seen_at) / 2

    def date_start(self, earliest: float, latest: float) -> None:
        """Narrow the window in which the job started (kept inside what the looks show)."""
        before = self.last_queued_at if self.last_queued_at is not None else self.submitted_at
        seen = self.running_seen_at if self.running_seen_at is not None else latest
        low = min(max(earliest, before), seen)
        self.start_window = (low, max(min(latest, seen), low))

    def start_uncertainty(self, now: float) -> float:
        """How wide the window is in which the job started, as seen at ``now``.

        A job never seen running started somewhere between its last queued sighting (or its
        submission) and now.
        """
        if self.start_window is not None:
            return self.start_window[1] - self.start_window[0]
        before = self.last_queued_at if self.last_queued_at is not None else self.submitted_at
        seen = self.running_seen_at if self.running_seen_at is not None else now
        return seen - before

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
    *,
    scout: bool = False,
) -> float:
    """Seconds to wait before the job's next status request.

    Until the batch knows its job durations, ``scout`` jobs (the batch's first few) poll
    from a much shorter first interval, so that fast jobs teach the batch quickly; the
    others back off normally and are woken once something is known.
    """
    median = known.quantile(0.5)
    if median is None:
        if scout:
            return poll_delay(
                clock.polls,
                status,
                policy,
                rng,
                initial=policy.initial * SCOUT_FACTOR,
                multiplier=SCOUT_MULTIPLIER,
            )
        return poll_delay(clock.polls, status, policy, rng)
    step = max(FINE_STEP * median, 0.01)
    early = known.quantile(EARLY_QUANTILE) or median
    if status is None:
        # First look: soon enough to learn the queue position, and no later than the
        # earliest a job that started at once could end.
        return _spread(min(early, policy.initial), policy, rng)
    if isinstance(status, Queued):
        # The queue's own movement is the surest rate; finished jobs are the next best.
        rate = known.queue_rate() or known.throughput()
        if rate is None or status.position is None:
            # A queued job cannot end sooner than a whole run from now: looking once per
            # median run keeps its start (and so its end) from being missed by much.
            return min(poll_delay(clock.polls, status, policy, rng), median)
        # It starts once the jobs ahead of it have left the queue. Looking again part of
        # the way there, rather than at the predicted moment, keeps an early (and so low)
        # rate estimate from making it sleep past its start: each look narrows the window
        # in which it started, which the end estimate rests on. When the queue is the
        # batch's own, the batch wakes the job as its jobs end, and this is a backstop.
        aim, look = QUEUE_AIM, QUEUE_LOOK
        if known.queue_is_ours():
            aim, look = QUEUE_BACKSTOP, QUEUE_BACKSTOP_LOOK
        wait = max(aim * (status.position + 1) / rate, step)
        return _spread(min(wait, look * median, policy.maximum), policy, rng)
    start = clock.started_at()
    if isinstance(status, Running) and start is not None:
        until_early = start + early - now
        if until_early > step:
            return _spread(min(until_early, policy.maximum), policy, rng)
        # Past the early mark, look in even steps of FINE_STEP of the typical run (the
        # detection lag never exceeds a step). Once the job has outlived nearly every job
        # seen, the steps grow with the square of its age: however long an outlier runs,
        # it costs at most about late/step more looks in all.
        age = now - start
        late = max(known.quantile(LATE_QUANTILE) or median, LATE_FLOOR * median)
        wait = step if age <= late else step * (age / late) ** 2
        return min(wait, policy.maximum)
    return poll_delay(clock.polls, status, policy, rng)


def started_by_count(clock: JobClock, status: JobStatus | None, known: BatchKnowledge) -> bool:
    """Whether a queued job should have started by now, counting the batch's ends: one more
    has ended since its last look than there were jobs ahead of it."""
    if not isinstance(status, Queued) or status.position is None:
        return False
    return known.ended - clock.ended_at_look > status.position


def start_from_ends(
    clock: JobClock, known: BatchKnowledge, now: float
) -> tuple[float, float] | None:
    """The window in which a job just seen running started, dated from the batch's ends.

    On the batch's own queue, a job ``p`` places back at its last look starts when the
    ``p + 1``-th job after that look ends: its start is that end, known within the end's
    own margin, however long ago the job was last looked at. None when the queue is shared
    (or the count is lost): the looks alone date the start then.
    """
    position, looked = clock.last_position, clock.last_queued_at
    if position is None or looked is None or not known.queue_is_ours():
        return None
    ends = known.ends_since(clock.ended_at_look)
    if ends is None:
        return None
    after = sorted(end for end in ends if end[0] >= looked)
    if len(after) > position:
        at, margin = after[position]
        return at - margin, at + margin
    if after:
        # Its end has not been seen yet: it started after the last one that has.
        return after[-1][0], now
    return None


def _spread(delay: float, policy: PollPolicy, rng: random.Random) -> float:
    # Jitter only shortens a long wait: overshooting the expected moment costs lag.
    return max(0.0, delay * (1 - rng.uniform(0, policy.jitter)))
