"""``Batch.stop``: a graceful stop from the library, against the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from odiqueue.testing import Faults
from tests.helpers import collect, emulated, manifest_lines, until

pytestmark = pytest.mark.anyio


async def test_stop_lets_submits_on_the_wire_through_then_withdraws_the_queued(
    tmp_path: Path,
) -> None:
    """A stop during slow submits waits for their replies (no job of unknown fate), cancels
    the one still behind another in the queue, leaves the others, and the rerun pays for
    each item once."""
    slow = Faults(rate_slow=1.0, slow_seconds=0.5, calls=frozenset({"submit"}))
    async with emulated(workers=1, job_seconds=2.0, faults=slow) as (emu, client):
        prompts = [f"a mug, view {i}" for i in range(6)]
        async with client.generate_many(prompts, tmp_path, max_in_flight=3) as outcomes:
            await until(lambda: emu.stats.jobs_created == 3)  # three POSTs await replies
            outcomes.stop(grace=0)
            assert [outcome async for outcome in outcomes] == []
            report = outcomes.stopped
        jobs = emu.stats.jobs
        assert report is not None
        assert report.done
        assert emu.stats.jobs_created == 3
        assert set(report.cancelled) == {i for i, job in jobs.items() if job.cancelled}
        assert len(report.cancelled) == 1
        assert all(jobs[i].started_at is None for i in report.cancelled)
        assert set(report.left) == set(jobs) - set(report.cancelled)
        assert all(jobs[i].cancel_requests == 0 for i in report.left)
        events = [(line["event"], line["key"]) for line in manifest_lines(tmp_path)]
        intents = {key for event, key in events if event == "intent"}
        assert intents == {key for event, key in events if event == "submitted"}

        again = await collect(client, prompts, tmp_path, max_in_flight=3)
        assert all(outcome.ok for outcome in again)
        assert len(again) == 6
        assert sum(1 for job in emu.stats.jobs.values() if job.started_at is not None) == 6
        assert emu.stats.jobs_created == 3 + 6 - len(report.left)


async def test_stop_needs_a_running_batch_and_a_grace_of_zero_or_more(tmp_path: Path) -> None:
    """stop() outside the ``async with`` is a RuntimeError; a negative grace names grace."""
    async with emulated() as (_, client):
        batch = client.generate_many(["a mug"], tmp_path)
        with pytest.raises(RuntimeError, match="async with"):
            batch.stop()
        async with batch:
            with pytest.raises(ValueError, match="grace"):
                batch.stop(grace=-1)
            assert batch.stopped is None
            assert [outcome.ok async for outcome in batch] == [True]
