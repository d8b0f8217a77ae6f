"""A task cancelled while it awaits one job cancels that job on the server (unless kept)."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from odiqueue import AsyncClient, JobHandle
from odiqueue.testing import Emulator, EmulatorConfig, Faults
from tests.helpers import emulated, until

pytestmark = pytest.mark.anyio

SLOW = "a slow vase [duration:600]"


async def test_timeout_around_generate_cancels_the_job() -> None:
    """An anyio.fail_after around generate() sends one cancel for the job it submitted."""
    async with emulated() as (emu, client):
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.5):
                await client.generate(SLOW)
        assert emu.stats.requests["cancel"] == 1
    (job,) = emu.stats.jobs.values()
    assert job.cancelled


async def test_move_on_after_around_wait_cancels_the_job() -> None:
    """A move_on_after around wait() sends one cancel for that job."""
    async with emulated() as (emu, client):
        handle = await client.submit(SLOW)
        with anyio.move_on_after(0.3) as scope:
            await client.wait(handle)
        assert scope.cancelled_caught
        assert emu.stats.jobs[handle.request_id].cancelled
        assert emu.stats.requests["cancel"] == 1


async def test_asyncio_wait_for_cancels_the_job() -> None:
    """A plain asyncio.wait_for timeout (a web handler's) cancels the job too."""
    async with emulated() as (emu, client):
        handle = await client.submit(SLOW)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.wait(handle), 0.3)
        assert emu.stats.jobs[handle.request_id].cancelled


async def test_keep_remote_leaves_the_job_running() -> None:
    """With keep_remote=True a cancelled wait()/generate() sends no cancel."""
    async with emulated() as (emu, client):
        handle = await client.submit(SLOW)
        with anyio.move_on_after(0.3):
            await client.wait(handle, keep_remote=True)
        with anyio.move_on_after(0.3):
            await client.generate(SLOW, keep_remote=True)
        assert emu.stats.requests["cancel"] == 0
        status = await client.status(handle)
        assert not status.terminal


async def test_cancelled_task_cancels_its_job() -> None:
    """Cancelling the task group a generate() runs in (a disconnected web client) cancels it."""
    async with emulated() as (emu, client):
        async with anyio.create_task_group() as group:
            group.start_soon(client.generate, SLOW)
            await until(lambda: emu.stats.requests["status"] >= 1)
            group.cancel_scope.cancel()
        await until(lambda: emu.stats.requests["cancel"] == 1)
        (job,) = emu.stats.jobs.values()
        assert job.cancelled


async def test_finished_wait_sends_no_cancel() -> None:
    """A wait() that returns normally sends no cancel."""
    async with emulated() as (emu, client):
        handle: JobHandle = await client.submit("a quick cup")
        await client.wait(handle)
    assert emu.stats.requests["cancel"] == 0


@pytest.mark.parametrize("way", ["asyncio.wait_for", "anyio.fail_after"])
async def test_cancelled_while_submitting_still_cancels_the_job(way: str) -> None:
    """A timeout while the submit's reply is on its way: the reply is still read, and the
    job it created is cancelled (a native asyncio cancel is not stopped by anyio's shield)."""
    slow_submit = Faults(rate_slow=1.0, slow_seconds=1.0, calls=frozenset({"submit"}))
    async with (
        Emulator(EmulatorConfig(faults=slow_submit)) as emu,
        AsyncClient("sk-submit-cancel-key-77", base_url=emu.base_url) as client,
    ):
        with pytest.raises(TimeoutError):
            if way == "asyncio.wait_for":
                await asyncio.wait_for(client.generate(SLOW), 0.3)
            else:
                with anyio.fail_after(0.3):
                    await client.generate(SLOW)
        (job,) = emu.stats.jobs.values()
        assert job.cancelled
        assert emu.stats.requests["cancel"] == 1
