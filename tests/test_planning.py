"""Batch poll planning, the submit limiter and file naming: pure maths, no sleeping."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from odiqueue import ConfigurationError, PollPolicy, Queued, Running, Succeeded
from odiqueue._batch._plan import (
    FINE_STEP,
    LATE_FLOOR,
    QUEUE_AIM,
    QUEUE_BACKSTOP,
    QUEUE_BACKSTOP_LOOK,
    QUEUE_LOOK,
    SCOUT_FACTOR,
    SCOUT_MULTIPLIER,
    BatchKnowledge,
    JobClock,
    next_poll,
    start_from_ends,
    started_by_count,
)
from odiqueue._batch._throttle import _RECOVERY_STEPS as _RECOVERY
from odiqueue._batch._throttle import RateLimiter
from odiqueue._naming import check_template, image_path, safe_component

POLICY = PollPolicy(initial=0.5, multiplier=1.5, maximum=10.0, jitter=0.0)


def learned(durations: list[float], start: float = 0.0, gap: float = 0.25) -> BatchKnowledge:
    known = BatchKnowledge()
    for i, d in enumerate(durations):
        known.record(d, start + i * gap)
    return known


def test_cold_start_backs_off() -> None:
    """With nothing learned yet, the plain geometric backoff applies."""
    clock = JobClock(submitted_at=0.0)
    waits = []
    for now in (0.0, 1.0, 2.0):
        waits.append(
            next_poll(clock, Running("r"), now, BatchKnowledge(), POLICY, random.Random(0))
        )
        clock.observe(Running("r"), now)
    assert waits == [0.5, 0.75, 1.125]


def test_quantiles_and_rates() -> None:
    """The batch learns run-time quantiles, its completion rate and the queue's pace."""
    known = learned([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], gap=0.5)
    assert known.quantile(0.5) == 5.0
    assert known.quantile(0.0) == 1.0
    assert known.throughput() == pytest.approx(2.0)
    assert BatchKnowledge().quantile(0.5) is None
    assert learned([1.0] * 3).throughput() is None  # a rate from three ends is not trusted
    known.record_queue_move(6, 2.0)
    known.record_queue_move(2, 2.0)
    assert known.queue_rate() == pytest.approx(2.0)
    barely = BatchKnowledge()
    barely.record_queue_move(1, 0.1)  # one place in a tenth of a second says little
    assert barely.queue_rate() is None


def test_knowledge_window_is_bounded() -> None:
    """Only recent durations count, so memory stays flat over any batch size."""
    known = learned([100.0] * 300 + [1.0] * 256)
    assert known.quantile(0.99) == 1.0


def test_running_job_sleeps_until_its_early_end() -> None:
    """A job seen running sleeps until about the shortest likely end, not a fixed step."""
    known = learned([20.0] * 10)
    clock = JobClock(submitted_at=0.0)
    clock.observe(Running("r"), 1.0)  # started between 0 and 1: estimate 0.5
    wait = next_poll(clock, Running("r"), 1.0, known, POLICY, random.Random(0))
    assert wait == pytest.approx(10.0)  # capped by the policy maximum (would be 19.5)
    clock_far = JobClock(submitted_at=0.0)
    clock_far.observe(Running("r"), 12.0)  # started about 6
    wait_far = next_poll(clock_far, Running("r"), 18.0, known, POLICY, random.Random(0))
    assert wait_far == pytest.approx(6.0 + 20.0 - 18.0)


def test_running_job_near_its_end_polls_in_fine_steps() -> None:
    """Near the expected end the step is a small fraction of the median duration."""
    known = learned([2.0] * 10)
    clock = JobClock(submitted_at=0.0)
    clock.observe(Running("r"), 0.2)
    wait = next_poll(clock, Running("r"), 2.0, known, POLICY, random.Random(0))
    assert wait == pytest.approx(FINE_STEP * 2.0)
    assert wait <= 0.1 * 2.0  # a detection lag within 10% of the median job


def test_outliers_poll_in_steps_that_grow() -> None:
    """Past the late mark the steps grow with the square of the age, so even a job that runs
    a hundred times the median costs a bounded number of looks, not thousands."""
    known = learned([2.0] * 10)
    policy = PollPolicy(initial=0.5, multiplier=1.5, maximum=1000.0, jitter=0.0)
    clock = JobClock(submitted_at=0.0)
    clock.observe(Running("r"), 0.0)
    late = LATE_FLOOR * 2.0
    assert next_poll(clock, Running("r"), late, known, policy, random.Random(0)) == (
        pytest.approx(FINE_STEP * 2.0)
    )
    assert next_poll(clock, Running("r"), 2 * late, known, policy, random.Random(0)) == (
        pytest.approx(4 * FINE_STEP * 2.0)
    )
    now, looks = late, 0
    while now < 200.0:
        now += next_poll(clock, Running("r"), now, known, policy, random.Random(0))
        looks += 1
    assert looks <= 1.5 * late / (FINE_STEP * 2.0)  # 24 here; one step each would be 1230


def test_queued_job_looks_again_before_its_turn() -> None:
    """A queued job sleeps part of its expected wait, and never much over a typical run."""
    known = learned([2.0] * 10)
    known.record_queue_move(8, 2.0)  # the queue clears 4 places a second
    clock = JobClock(submitted_at=0.0)
    wait = next_poll(clock, Queued("r", 7), 0.0, known, POLICY, random.Random(0))
    assert wait == pytest.approx(QUEUE_AIM * 8 / 4)
    far = next_poll(clock, Queued("r", 1000), 0.0, known, POLICY, random.Random(0))
    assert far == pytest.approx(QUEUE_LOOK * 2.0)
    near = next_poll(clock, Queued("r", 0), 0.0, known, POLICY, random.Random(0))
    assert near == pytest.approx(FINE_STEP * 2.0)


def test_first_look_is_early() -> None:
    """A new job is first polled soon, sooner still when jobs end fast."""
    slow = learned([20.0] * 10)
    fast = learned([0.0] * 10)
    clock = JobClock(submitted_at=0.0)
    assert next_poll(clock, None, 0.0, slow, POLICY, random.Random(0)) == POLICY.initial
    assert next_poll(clock, None, 0.0, fast, POLICY, random.Random(0)) == 0.0


def test_start_is_dated_between_two_looks() -> None:
    """The start is placed midway between the last queued and the first running look."""
    clock = JobClock(submitted_at=0.0)
    clock.observe(Queued("r", 3), 1.0)
    clock.observe(Running("r"), 5.0)
    assert clock.started_at() == 3.0
    assert clock.start_uncertainty(now=9.0) == 4.0
    assert clock.last_position == 3


def test_blurred_samples_are_not_learned() -> None:
    """Once a median is known, run times with a vague start count only toward throughput."""
    known = learned([2.0] * 5)
    known.record(0.1, 5.0, uncertainty=3.0)
    assert known.quantile(0.0) == 2.0
    known.record(1.0, 6.0, uncertainty=0.1)
    assert known.quantile(0.0) == 1.0


def test_job_clock_estimates() -> None:
    """Start and end are estimated midway through the gaps the polls left."""
    clock = JobClock(submitted_at=0.0)
    clock.observe(Queued("r", 2), 1.0)
    clock.observe(Running("r"), 3.0)
    clock.observe(Running("r"), 5.0)
    assert clock.started_at() == 2.0
    assert clock.finished_estimate(7.0) == 6.0
    assert clock.polls == 3
    assert Succeeded("r").terminal


def test_rate_limiter_spaces_submits() -> None:
    """A burst passes at once, then each submit waits its share of a second."""
    limiter = RateLimiter(rate=4.0, burst=2)
    waits = [limiter.reserve(now=0.0) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.25, 0.5, 0.75])
    assert limiter.reserve(now=10.0) == 0.0


def test_rate_limiter_halves_and_recovers() -> None:
    """A 429 halves the rate; successes win it back gradually, never above the limit."""
    limiter = RateLimiter(rate=8.0)
    limiter.slow_down(now=0.0)
    assert limiter.rate == 4.0
    limiter.slow_down(now=0.5)  # the same burst of refusals: halved once
    assert limiter.rate == 4.0
    limiter.recover()
    assert 4.0 < limiter.rate < 8.0
    for _ in range(100):
        limiter.recover()
    assert limiter.rate == 8.0
    assert RateLimiter(rate=None).reserve(now=0.0) == 0.0


def test_unlimited_limiter_closes_on_429_then_opens_again() -> None:
    """With no configured rate, a 429 limits to half the seen rate until it recovers."""
    limiter = RateLimiter(rate=None)
    for i in range(11):
        assert limiter.reserve(now=i * 0.1) == 0.0  # 10 a second, unlimited
    limiter.slow_down(now=1.0)
    assert limiter.rate == pytest.approx(5.0)
    assert limiter.reserve(now=1.1) == 0.0
    assert limiter.reserve(now=1.1) == pytest.approx(0.2)
    for _ in range(_RECOVERY):
        limiter.recover()
    assert limiter.rate is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("../../etc/passwd", "_.._etc_passwd"),
        (".hidden", "hidden"),
        ("a/b\\c:d", "a_b_c_d"),
        ("CON.png", "_CON.png"),
        ("nul", "_nul"),
        ("", "_"),
        ("...", "_"),
        ("tab\there", "tab_here"),
        ("Über Äpfel", "Über Äpfel"),
    ],
)
def test_safe_component(text: str, expected: str) -> None:
    """Names lose separators, control characters, leading dots and reserved words."""
    assert safe_component(text) == expected


def test_long_names_are_cut() -> None:
    """Names are cut to a length every file system accepts."""
    assert len(safe_component("é" * 500).encode()) <= 200


def test_image_path_stays_inside_out_dir(tmp_path: Path) -> None:
    """Whatever the key, the file lands directly in out_dir."""
    path = image_path(
        tmp_path, "{key}_{index}.{ext}", key="../../x", index=0, request_id="r", ext="png", count=1
    )
    assert path.parent == tmp_path
    assert path.name == "_.._x_0.png"


def test_image_index_added_when_template_lacks_it(tmp_path: Path) -> None:
    """Several images of one job never share a name."""
    names = {
        image_path(
            tmp_path, "{key}.{ext}", key="k", index=i, request_id="r", ext="jpg", count=3
        ).name
        for i in range(3)
    }
    assert names == {"k_0.jpg", "k_1.jpg", "k_2.jpg"}


@pytest.mark.parametrize("template", ["{nope}.png", "{index}.{ext}", "{key"])
def test_bad_templates(template: str) -> None:
    """Unknown fields, or templates where all jobs would collide, are refused up front."""
    with pytest.raises(ConfigurationError):
        check_template(template)


def test_scouts_poll_early_while_the_batch_knows_nothing() -> None:
    """Before any job has finished, scout jobs look ten times sooner than the others."""
    clock = JobClock(submitted_at=0.0)
    plain = next_poll(clock, None, 0.0, BatchKnowledge(), POLICY, random.Random(0))
    scout = next_poll(clock, None, 0.0, BatchKnowledge(), POLICY, random.Random(0), scout=True)
    assert plain == POLICY.initial
    assert scout == pytest.approx(POLICY.initial * SCOUT_FACTOR)
    known = learned([2.0] * 10)
    assert (
        next_poll(clock, None, 0.0, known, POLICY, random.Random(0), scout=True) == POLICY.initial
    )


def test_scouts_back_off_slowly() -> None:
    """A scout's interval grows by SCOUT_MULTIPLIER, not the policy's faster multiplier."""
    clock = JobClock(submitted_at=0.0)
    waits = []
    for now in (0.0, 1.0, 2.0):
        waits.append(
            next_poll(
                clock, Running("r"), now, BatchKnowledge(), POLICY, random.Random(0), scout=True
            )
        )
        clock.observe(Running("r"), now)
    first = POLICY.initial * SCOUT_FACTOR
    assert waits == pytest.approx([first, first * SCOUT_MULTIPLIER, first * SCOUT_MULTIPLIER**2])


def test_one_finished_job_is_enough_to_plan_on() -> None:
    """The first end already gives fine steps (on its run time, the wave's shortest)."""
    known = learned([1.5])
    clock = JobClock(submitted_at=0.0)
    clock.observe(Running("r"), 0.0)
    assert next_poll(clock, Running("r"), 2.0, known, POLICY, random.Random(0)) == (
        pytest.approx(FINE_STEP * 1.5)
    )


def test_own_queue_is_told_from_a_shared_one() -> None:
    """A queue that moves as fast as the batch's own jobs end is the batch's own: a queued
    job then only keeps a distant backstop look. One that moves faster has other tenants."""
    own, shared = learned([2.0] * 10), learned([2.0] * 10)
    for _ in range(4):
        own.record_queue_move(4, 1.0, ours=4)
        shared.record_queue_move(4, 1.0, ours=1)
    assert own.queue_is_ours()
    assert not shared.queue_is_ours()
    assert not learned([2.0]).queue_is_ours()  # nothing seen yet
    clock = JobClock(submitted_at=0.0)
    assert next_poll(clock, Queued("r", 7), 0.0, shared, POLICY, random.Random(0)) == (
        pytest.approx(QUEUE_AIM * 8 / 4)
    )
    assert next_poll(clock, Queued("r", 7), 0.0, own, POLICY, random.Random(0)) == (
        pytest.approx(QUEUE_BACKSTOP * 8 / 4)
    )
    policy = PollPolicy(initial=0.5, maximum=1000.0, jitter=0.0)
    far = next_poll(clock, Queued("r", 1000), 0.0, own, policy, random.Random(0))
    assert far == pytest.approx(QUEUE_BACKSTOP_LOOK * 2.0)


def test_a_start_dated_from_ends_stays_within_the_looks() -> None:
    """A narrower start window replaces the looks' midpoint, clamped to what they show."""
    clock = JobClock(submitted_at=0.0)
    clock.observe(Queued("r", 3), 1.0)
    clock.observe(Running("r"), 9.0)
    clock.date_start(6.9, 7.1)
    assert clock.started_at() == pytest.approx(7.0)
    assert clock.start_uncertainty(now=12.0) == pytest.approx(0.2)
    clock.date_start(0.0, 20.0)  # wider than the looks allow
    assert clock.start_window == (1.0, 9.0)


def test_a_queued_job_is_dated_by_the_ends_after_its_look() -> None:
    """Two places back at its last look, the job started at the third end after it."""
    own = learned([2.0] * 10)
    for _ in range(4):
        own.record_queue_move(4, 1.0, ours=4)
    own.record_end(0.5, 0.05)  # before the look: not counted
    clock = JobClock(submitted_at=0.0)
    clock.observe(Queued("r", 2), 1.0, ended=own.ended)
    for at in (2.5, 1.5):  # seen out of order
        own.record_end(at, 0.05)
    assert not started_by_count(clock, Queued("r", 2), own)
    # One end short: it started no sooner than the latest end seen.
    assert start_from_ends(clock, own, now=3.0) == (2.5, 3.0)
    own.record_end(2.0, 0.05)
    assert started_by_count(clock, Queued("r", 2), own)
    assert start_from_ends(clock, own, now=3.0) == pytest.approx((2.45, 2.55))
    shared = learned([2.0] * 10)
    shared.record_end(2.0, 0.05)
    assert start_from_ends(clock, shared, now=3.0) is None
