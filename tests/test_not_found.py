"""A 404 for a job this run created is not the end of it (issue 14, defect 3); and a job's
deadline covers the download of its images too."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from odiqueue import (
    AsyncClient,
    DeadlineExceededError,
    DownloadPolicy,
    ImageRequest,
    NotFoundError,
    Outcome,
    RetryPolicy,
)
from tests.helpers import WAIT_BOUND
from tests.queue_server import QueueServer, base_url, queue_server

pytestmark = pytest.mark.anyio

KEY = "sk-not-found-test-0000"
QUICK = RetryPolicy(attempts=3, initial=0.01, maximum=0.02)


async def run_batch(
    server: QueueServer, out: Path, retry: RetryPolicy = QUICK, count: int = 2, **kw: object
) -> list[Outcome]:
    items = [(f"k{i}", ImageRequest(f"prompt {i}")) for i in range(count)]
    downloads = kw.pop("downloads", DownloadPolicy())
    async with (
        AsyncClient(KEY, base_url=base_url(server), retry=retry, downloads=downloads) as client,  # type: ignore[arg-type]
        client.generate_many(items, out, **kw) as outcomes,  # type: ignore[arg-type]
    ):
        return [outcome async for outcome in outcomes]


def last_events(folder: Path) -> dict[str, str]:
    """Each key's last manifest event."""
    last: dict[str, str] = {}
    for line in (folder / "manifest.jsonl").read_text().splitlines():
        event = json.loads(line)
        if "key" in event:
            last[event["key"]] = event["event"]
    return last


async def test_a_response_url_404_twice_then_the_result_is_saved_unpaid(tmp_path: Path) -> None:
    """The response URL answers 404 for its first two asks (a replica not caught up), then
    the result: both items are saved, from the jobs first paid for (2 submits, no more)."""
    async with queue_server() as server:
        server.response_404s = 2
        outcomes = await run_batch(server, tmp_path)
        assert server.submits == 2
        assert server.asks["response j1"] == 3
    assert [o.error for o in outcomes if not o.ok] == []
    assert last_events(tmp_path) == {"k0": "saved", "k1": "saved"}


async def test_a_job_unknown_for_too_long_is_left_to_the_rerun_by_id(tmp_path: Path) -> None:
    """A job the server keeps not knowing (404 on its result and its status) is given up
    once the retry policy's timeout has passed, never submitted again: its "submitted"
    line stays the last word, and the rerun fetches it by id once the server knows it."""
    async with queue_server() as server:
        server.response_404s = server.status_404s = 10_000
        retry = RetryPolicy(attempts=3, initial=0.01, maximum=0.05, timeout=0.5)
        outcomes = await run_batch(server, tmp_path, retry)
        assert server.submits == 2
        assert server.asks["status j1"] > 1  # asked again before giving up
        for outcome in outcomes:
            assert isinstance(outcome.error, NotFoundError)
            assert "not submitted again" in str(outcome.error)
        assert last_events(tmp_path) == {"k0": "submitted", "k1": "submitted"}

        server.response_404s = server.status_404s = 0
        outcomes = await run_batch(server, tmp_path)
        assert server.submits == 2
    assert all(o.ok for o in outcomes)


async def test_the_job_deadline_covers_its_download(tmp_path: Path) -> None:
    """A job finished at once whose image host trickles bytes is given up at the job's
    deadline (no download bound of its own set): paid for, so left to a rerun by id."""
    async with queue_server() as server:
        server.image_mode = lambda ask: "trickle"
        server.trickle = 0.05
        downloads = DownloadPolicy(total=None, min_rate=None)
        with anyio.fail_after(WAIT_BOUND):  # only stops a broken test
            outcomes = await run_batch(server, tmp_path, count=1, deadline=0.5, downloads=downloads)
        assert server.submits == 1
    (outcome,) = outcomes
    assert isinstance(outcome.error, DeadlineExceededError)
    assert last_events(tmp_path) == {"k0": "submitted"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".odiqueue.lock", "manifest.jsonl"]
