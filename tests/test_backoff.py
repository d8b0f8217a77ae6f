"""Waiting maths, checked as numbers: nothing here sleeps."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import anyio
import pytest

from odiqueue import PollPolicy, Queued, RetryPolicy, Running, instant_waits
from odiqueue._backoff import parse_retry_after, poll_delay, retry_delay, sleep


def test_retry_delay_is_full_jitter_under_a_growing_cap() -> None:
    """Retry n waits uniformly within [0, min(maximum, initial * 2**(n-1))]."""
    policy = RetryPolicy(initial=0.5, maximum=4.0)
    rng = random.Random(1)
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0), (500, 4.0)]:
        delays = [retry_delay(attempt, policy, rng) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap * 0.8  # the whole range is used, not a fixed value


def test_retry_after_seconds() -> None:
    """Retry-After in seconds is read as a float, never negative."""
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("-4") == 0.0


def test_retry_after_http_date() -> None:
    """Retry-After as an HTTP date is the time left until then."""
    now = datetime(2026, 11, 21, 12, 0, 0, tzinfo=timezone.utc)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(header, now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now=now) == 0


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf"])
def test_retry_after_unreadable(value: str | None) -> None:
    """An absent or unreadable Retry-After gives None (fall back to backoff)."""
    assert parse_retry_after(value) is None


def test_poll_delay_grows_geometrically_to_the_cap() -> None:
    """Without jitter, poll waits grow by the multiplier up to the maximum."""
    policy = PollPolicy(initial=0.5, multiplier=2.0, maximum=3.0, jitter=0.0)
    rng = random.Random(0)
    waits = [poll_delay(n, Running("r"), policy, rng) for n in range(5)]
    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_poll_delay_far_back_in_queue_waits_longer() -> None:
    """A job with many jobs ahead polls less often, still within the maximum."""
    policy = PollPolicy(initial=0.5, jitter=0.0, seconds_per_position=2.0, maximum=10.0)
    rng = random.Random(0)
    assert poll_delay(0, Queued("r", 3), policy, rng) == 6.0
    assert poll_delay(0, Queued("r", 100), policy, rng) == 10.0
    assert poll_delay(0, Queued("r", 0), policy, rng) == 0.5


def test_poll_delay_initial_override() -> None:
    """A caller may start the backoff from a shorter first interval."""
    policy = PollPolicy(initial=0.5, multiplier=2.0, jitter=0.0, maximum=10.0)
    rng = random.Random(0)
    assert poll_delay(0, Running("r"), policy, rng, initial=0.05) == 0.05
    assert poll_delay(2, Running("r"), policy, rng, initial=0.05) == 0.2


def test_poll_delay_jitter_stays_in_band() -> None:
    """Jitter spreads waits by at most the configured fraction."""
    policy = PollPolicy(initial=2.0, multiplier=1.0, jitter=0.25, maximum=10.0)
    rng = random.Random(3)
    waits = {poll_delay(1, Running("r"), policy, rng) for _ in range(100)}
    assert all(1.5 <= w <= 2.5 for w in waits)
    assert len(waits) > 50


@pytest.mark.anyio
async def test_instant_waits_skip_sleeping() -> None:
    """Under instant_waits, a long wait returns at once; the switch restores itself."""
    with instant_waits(), anyio.fail_after(1):
        await sleep(3600)
    with pytest.raises(TimeoutError), anyio.fail_after(0.05):
        await sleep(3600)
