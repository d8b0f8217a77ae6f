"""AsyncClient end to end against the emulator: every reply variant, faults, and the key."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from PIL import Image as PILImage

from odiqueue import (
    AsyncClient,
    CancelOutcome,
    DeadlineExceededError,
    ImageRequest,
    JobCancelledError,
    JobFailedError,
    PollPolicy,
    Queued,
    Running,
    SubmissionUncertainError,
    Succeeded,
    Timeouts,
    instant_waits,
)
from odiqueue.testing import Emulator, EmulatorConfig, Faults
from tests.helpers import emulated

pytestmark = pytest.mark.anyio

KEY = "sk-emulator-test-key-9876"


async def test_quickstart_generate_and_download(tmp_path: Path) -> None:
    """generate() then download() gives a real image of the requested format and size."""
    async with emulated() as (emu, client):
        with instant_waits():
            result = await client.generate(
                ImageRequest("a red apple", size="1536x1024", output_format="webp", n=2)
            )
            paths = [
                (await client.download(image, tmp_path / f"apple_{i}.webp")).path
                for i, image in enumerate(result.images)
            ]
    assert len(result.images) == 2
    for path in paths:
        with PILImage.open(path) as img:
            assert (img.format, img.size) == ("WEBP", (1536, 1024))
    assert emu.stats.requests["submit"] == 1
    assert all("Authorization" not in h for h in emu.stats.image_request_headers)
    assert len(emu.stats.image_request_headers) == 2


@pytest.mark.parametrize(
    "shape", ["outputs", "images", "output_content", "openai_b64", "openai_url", "data_uri"]
)
async def test_every_result_shape_downloads(shape: str, tmp_path: Path) -> None:
    """Each result shape the emulator speaks yields a saved, decodable PNG."""
    async with emulated(result_shape=shape) as (_, client):
        with instant_waits():
            result = await client.generate("a pear")
            saved = await client.download(result.images[0], tmp_path / "pear.png")
    with PILImage.open(saved.path) as img:
        assert img.format == "PNG"


@pytest.mark.parametrize("spelling", ["upper", "lower", "aliases"])
@pytest.mark.parametrize("submit_shape", ["documented", "terse"])
async def test_status_spellings_and_submit_shapes(spelling: str, submit_shape: str) -> None:
    """Every status spelling and submit shape is followed to completion."""
    async with emulated(status_spelling=spelling, submit_shape=submit_shape, progress=True) as (
        _,
        client,
    ):
        with instant_waits():
            result = await client.generate("a plum")
    assert len(result.images) == 1


async def test_not_ready_400_style() -> None:
    """A server answering 400 'still in progress' for unfinished results is waited out."""
    async with emulated(not_ready_style="400", job_seconds=0.2) as (_, client):
        handle = await client.submit("a fig")
        assert await client.result(handle) is None
        with instant_waits():
            assert (await client.wait(handle)).images


async def test_poll_yields_each_change_until_terminal() -> None:
    """poll() reports queued (with position), running, then succeeded, each once."""
    fast = PollPolicy(initial=0.02, multiplier=1.2, maximum=0.1)
    async with (
        Emulator(EmulatorConfig(workers=1, job_seconds=1.0)) as emu,
        AsyncClient(KEY, base_url=emu.base_url, poll=fast) as client,
    ):
        first = await client.submit("first")
        second = await client.submit("second")
        seen = [status async for status in client.poll(second)]
        assert isinstance(seen[0], Queued)
        assert seen[0].position == 0
        assert any(isinstance(s, Running) for s in seen)
        assert isinstance(seen[-1], Succeeded)
        assert len(seen) == len(set(seen))
        assert isinstance(await client.status(first), Succeeded)


@pytest.mark.parametrize("error_style", ["string", "object"])
async def test_failed_job_raises_with_error_type(error_style: str) -> None:
    """A job that fails raises JobFailedError carrying the provider's message."""
    async with emulated(error_style=error_style) as (_, client):
        with instant_waits(), pytest.raises(JobFailedError) as caught:
            await client.generate("a cat [fail:CONTENT_BLOCKED]")
    assert caught.value.request_id
    assert caught.value.error_type == "CONTENT_BLOCKED"


async def test_cancel_then_wait_raises_cancelled() -> None:
    """A cancelled job reads as cancelled; cancelling it again is ALREADY_COMPLETED."""
    async with emulated(workers=1, job_seconds=60) as (_, client):
        handle = await client.submit("slow")
        assert await client.cancel(handle) is CancelOutcome.REQUESTED
        assert await client.cancel(handle) is CancelOutcome.ALREADY_COMPLETED
        with instant_waits(), pytest.raises(JobCancelledError):
            await client.wait(handle)


async def test_deadline_cancels_on_server() -> None:
    """wait() past its deadline cancels the job on the server and says so."""
    async with emulated(job_seconds=60) as (emu, client):
        handle = await client.submit("too slow")
        with pytest.raises(DeadlineExceededError):
            await client.wait(handle, deadline=0.3)
    assert emu.stats.jobs[handle.request_id].cancelled


async def test_attach_by_id() -> None:
    """A job known only by id is followed to its images."""
    async with emulated() as (_, client):
        handle = await client.submit("by id")
        with instant_waits():
            result = await client.wait(client.attach(handle.request_id))
    assert result.request_id == handle.request_id


async def test_hundred_jobs_through_twenty_percent_faults() -> None:
    """With 20% of status and result calls failing, 100 generate() calls all succeed once."""
    faults = Faults(
        rate_429=0.07,
        rate_503=0.07,
        rate_reset=0.06,
        retry_after=0.01,
        calls=frozenset({"status", "result"}),
    )
    async with emulated(faults=faults, workers=16) as (emu, client):
        with instant_waits():
            async with anyio.create_task_group() as group:
                results: list[int] = []

                async def one(i: int) -> None:
                    results.append(len((await client.generate(f"product {i}")).images))

                for i in range(100):
                    group.start_soon(one, i)
    assert results == [1] * 100
    assert emu.stats.requests["submit"] == 100
    assert emu.stats.jobs_created == 100
    assert sum(emu.stats.faults_injected.values()) > 0


async def test_slow_submit_reply_is_uncertain_and_sent_once() -> None:
    """A submit reply slower than the read timeout raises uncertain after exactly one POST."""
    faults = Faults(rate_slow=1.0, slow_seconds=2.0, calls=frozenset({"submit"}))
    async with (
        Emulator(EmulatorConfig(faults=faults)) as emu,
        AsyncClient(KEY, base_url=emu.base_url, timeouts=Timeouts(read=0.3)) as client,
    ):
        with instant_waits(), pytest.raises(SubmissionUncertainError):
            await client.submit("paid once")
        assert emu.stats.requests["submit"] == 1
        assert emu.stats.jobs_created == 1


async def test_wrong_key_is_authentication_error() -> None:
    """An emulator that knows one key answers others with 401, mapped and unretried."""
    from odiqueue import AuthenticationError

    async with (
        Emulator(EmulatorConfig(api_key="the-right-key")) as emu,
        AsyncClient("a-wrong-key-000000", base_url=emu.base_url) as client,
    ):
        with pytest.raises(AuthenticationError):
            await client.submit("x")
        assert emu.stats.requests["submit"] == 1
