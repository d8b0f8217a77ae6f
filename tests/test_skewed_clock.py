"""A server whose clock runs an hour ahead of the client's, and 429s on submit (issue 14,
defect 5): a Retry-After date is measured against the reply's own Date header, and a 429
on submit never fails a batch item."""

from __future__ import annotations

import email.utils
import time
from pathlib import Path

import pytest

from odiqueue import AsyncClient, ImageRequest, Outcome, RetryPolicy
from odiqueue._backoff import retry_after_of
from tests.queue_server import QueueServer, base_url, queue_server

pytestmark = pytest.mark.anyio

KEY = "sk-skewed-clock-test-0000"
HOUR = 3600.0


async def run_batch(
    server: QueueServer, out: Path, retry: RetryPolicy, count: int
) -> list[Outcome]:
    items = [(f"k{i}", ImageRequest(f"prompt {i}")) for i in range(count)]
    async with (
        AsyncClient(KEY, base_url=base_url(server), retry=retry) as client,
        client.generate_many(items, out, max_in_flight=8) as outcomes,
    ):
        return [outcome async for outcome in outcomes]


def test_a_retry_after_date_is_measured_against_the_replys_date() -> None:
    """ "One second after the server's now" is one second, whatever this machine's clock says;
    without a Date header, this machine's clock is all there is."""
    server_now = time.time() + HOUR
    headers = {
        "Date": email.utils.formatdate(server_now, usegmt=True),
        "Retry-After": email.utils.formatdate(server_now + 1, usegmt=True),
    }
    assert retry_after_of(headers) == 1.0
    assert retry_after_of({"Retry-After": headers["Retry-After"]}) > HOUR - 5
    assert retry_after_of({"Date": "not a date", "Retry-After": "2"}) == 2.0


async def test_a_server_clock_an_hour_ahead_does_not_freeze_a_batch(tmp_path: Path) -> None:
    """40 items, the first 10 submits refused with a Retry-After date one second after the
    server's own clock, which runs an hour ahead: every item is saved, none failed."""
    async with queue_server() as server:
        server.clock_ahead = HOUR
        server.refuse_submits = 10
        outcomes = await run_batch(server, tmp_path, RetryPolicy(attempts=3), 40)
        assert server.asks["submit"] > 40  # the refusals really happened
        assert server.submits == 40
    assert [o.error for o in outcomes if not o.ok] == []
    assert len(outcomes) == 40


async def test_a_429_on_submit_never_fails_an_item(tmp_path: Path) -> None:
    """Refusals longer than the client will wait at once (Retry-After over max_retry_after),
    more of them than the retry policy's attempts: the items wait and are all saved."""
    async with queue_server() as server:
        server.retry_after_seconds = 30.0
        server.refuse_submits = 12
        retry = RetryPolicy(attempts=2, initial=0.01, maximum=0.02, max_retry_after=0.05)
        outcomes = await run_batch(server, tmp_path, retry, 4)
        assert server.asks["submit"] == 16
    assert [o.error for o in outcomes if not o.ok] == []
