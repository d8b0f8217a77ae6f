"""The odiqueue.testing emulator, driven over real HTTP with a plain aiohttp session.

No assertion depends on how fast this machine is: states are awaited by polling with a
generous bound, long jobs are made long enough never to finish during a test, and short
ones are awaited, never timed.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from PIL import Image

from odiqueue.testing._cli import build_parser, config_from_args, main
from odiqueue.testing._config import EmulatorConfig, Faults
from odiqueue.testing._server import Emulator
from tests.helpers import WAIT_BOUND, reply, until

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
AUTH = {"Authorization": "Bearer test-key"}
FAST = 0.001  # time_scale: one emulated second is a real millisecond
NEVER = "[duration:100000000]"  # at FAST, a day: the job runs for the whole test
ID_PATTERN = re.compile(r"^mmsu_[0-9a-z]{26}$")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session that sends a key to every URL it calls."""
    async with aiohttp.ClientSession(headers=AUTH) as client:
        yield client


def emulator(**fields: Any) -> Emulator:
    """An emulator with jobs that finish almost at once unless told otherwise."""
    fields.setdefault("time_scale", FAST)
    return Emulator(EmulatorConfig(**fields))


async def submit(
    session: aiohttp.ClientSession, emu: Emulator, prompt: str = "a red apple", **params: Any
) -> dict[str, Any]:
    """Submit one job and return the submit reply, failing on anything but 200."""
    url = f"{emu.base_url}/v1/queue/gpt_image_1"
    async with session.post(url, json={"prompt": prompt, **params}) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    """GET a URL and return its HTTP status and JSON body."""
    async with session.get(url) as response:
        return response.status, await response.json()


async def wait_for(
    session: aiohttp.ClientSession, url: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll a status URL until ``done(body)``; the bound only stops a broken test."""
    with anyio.fail_after(WAIT_BOUND):
        while True:
            _, body = await get_json(session, url)
            if done(body):
                return body
            await asyncio.sleep(0.005)


def completed(body: dict[str, Any]) -> bool:
    """True for a status body of a finished job, in any spelling."""
    return str(body["status"]).upper() in {"COMPLETED", "FAILED", "CANCELLED"}


def decode(data: bytes) -> Image.Image:
    """Fully decode image bytes with Pillow."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# -- submit and validation ----------------------------------------------------------------


async def test_submit_documented_shape(session: aiohttp.ClientSession) -> None:
    """A submit answers 200 with the documented keys, absolute API URLs and a gateway id."""
    async with emulator() as emu:
        url = f"{emu.base_url}/v1/queue/gpt_image_1"
        async with session.post(url, json={"prompt": "x"}) as response:
            assert response.status == 200
            assert response.headers["X-Request-Id"].startswith("gw_")
            body = await response.json()
    assert set(body) == set(reply("submit.documented"))
    assert ID_PATTERN.match(body["request_id"])
    job_url = f"{emu.base_url}/v1/queue/gpt_image_1/requests/{body['request_id']}"
    assert body["status_url"] == f"{job_url}/status"
    assert body["response_url"] == f"{job_url}/response"
    assert body["cancel_url"] == f"{job_url}/cancel"
    assert body["queue_position"] == 0


async def test_submit_terse_shape(session: aiohttp.ClientSession) -> None:
    """submit_shape='terse' answers only the request id and IN_QUEUE."""
    async with emulator(submit_shape="terse") as emu:
        body = await submit(session, emu)
    assert set(body) == set(reply("submit.terse"))
    assert body["status"] == "IN_QUEUE"


async def test_request_ids_are_unique(session: aiohttp.ClientSession) -> None:
    """Many submits get as many distinct ids."""
    async with emulator() as emu:
        bodies = await asyncio.gather(*(submit(session, emu) for _ in range(50)))
    assert len({body["request_id"] for body in bodies}) == 50


@pytest.mark.parametrize(
    ("body", "field", "error_type"),
    [
        ({}, "prompt", "missing"),
        ({"prompt": ""}, "prompt", "string_too_short"),
        ({"prompt": "x" * 32001}, "prompt", "string_too_long"),
        ({"prompt": 5}, "prompt", "string_type"),
        ({"prompt": "x", "n": 0}, "n", "greater_than_equal"),
        ({"prompt": "x", "n": 11}, "n", "less_than_equal"),
        ({"prompt": "x", "n": "2"}, "n", "int_type"),
        ({"prompt": "x", "size": "512x512"}, "size", "literal_error"),
        ({"prompt": "x", "quality": "ultra"}, "quality", "literal_error"),
        ({"prompt": "x", "background": "pink"}, "background", "literal_error"),
        ({"prompt": "x", "output_format": "gif"}, "output_format", "literal_error"),
        ({"prompt": "x", "output_compression": 101}, "output_compression", "less_than_equal"),
        ({"prompt": "x", "output_compression": -1}, "output_compression", "greater_than_equal"),
        ({"prompt": "x", "moderation": "none"}, "moderation", "literal_error"),
        ({"prompt": "x", "user": 7}, "user", "string_type"),
        (
            {"prompt": "x", "background": "transparent", "output_format": "jpeg"},
            "background",
            "value_error",
        ),
        ({"prompt": "x [fail:NO_SUCH_TYPE]"}, "prompt", "value_error"),
        ([1, 2], None, "dict_type"),
    ],
)
async def test_validation_rejects_each_rule(
    session: aiohttp.ClientSession, body: Any, field: str | None, error_type: str
) -> None:
    """Each documented parameter rule gives a fal-style 422 naming the field; no job is made."""
    async with emulator() as emu:
        url = f"{emu.base_url}/v1/queue/gpt_image_1"
        async with session.post(url, json=body) as response:
            assert response.status == 422
            detail = (await response.json())["detail"]
        assert emu.stats.jobs_created == 0
    assert [entry["type"] for entry in detail] == [error_type]
    assert detail[0]["loc"] == (["body"] if field is None else ["body", field])
    assert set(detail[0]) == set(reply("error.detail_list_422")["detail"][0])


async def test_validation_accepts_full_and_unknown_fields(session: aiohttp.ClientSession) -> None:
    """Every documented field at a legal value, plus unknown fields, is accepted."""
    params = {
        "n": 10,
        "size": "1536x1024",
        "quality": "high",
        "background": "transparent",
        "output_format": "webp",
        "output_compression": 0,
        "moderation": "low",
        "user": "u-1",
        "something_new": {"x": 1},
    }
    async with emulator() as emu:
        body = await submit(session, emu, "x" * 32000, **params)
        assert emu.stats.jobs[body["request_id"]].params["something_new"] == {"x": 1}


async def test_body_that_is_not_json_is_422(session: aiohttp.ClientSession) -> None:
    """A submit body that is not JSON answers 422 with a body-level detail."""
    async with emulator() as emu:
        url = f"{emu.base_url}/v1/queue/gpt_image_1"
        async with session.post(url, data=b"{not json") as response:
            assert response.status == 422
            assert (await response.json())["detail"][0]["type"] == "json_invalid"


# -- auth and credits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_key", "headers", "status"),
    [
        (None, {}, 401),
        (None, {"Authorization": "Bearer "}, 401),
        (None, {"Authorization": "Basic abc"}, 401),
        (None, {"Authorization": "Key anything"}, 200),
        ("secret", {"Authorization": "Bearer wrong"}, 401),
        ("secret", {"Authorization": "Bearer secret"}, 200),
        ("secret", {"Authorization": "Key secret"}, 200),
    ],
)
async def test_auth(api_key: str | None, headers: dict[str, str], status: int) -> None:
    """Bearer or Key with a non-empty key passes; a configured key must match; else 401."""
    async with emulator(api_key=api_key) as emu, aiohttp.ClientSession(headers=headers) as client:
        url = f"{emu.base_url}/v1/queue/gpt_image_1"
        async with client.post(url, json={"prompt": "x"}) as response:
            assert response.status == status
            body = await response.json()
            if status == 401:
                assert set(body) == set(reply("error.unauthorized_401"))
                assert body["error"]["code"] == "UNAUTHORIZED"
                assert body["request_id"] == response.headers["X-Request-Id"]
        assert emu.stats.jobs_created == (1 if status == 200 else 0)


async def test_credits_run_out_with_402(session: aiohttp.ClientSession) -> None:
    """A submit costs n credits; one that cannot be paid is a 402 and creates no job."""
    async with emulator(credits=3) as emu:
        await submit(session, emu, n=2)
        url = f"{emu.base_url}/v1/queue/gpt_image_1"
        async with session.post(url, json={"prompt": "x", "n": 2}) as response:
            assert response.status == 402
            assert await response.json() == reply("error.insufficient_credits_402")
        await submit(session, emu, n=1)
        stats = emu.stats
        assert stats.jobs_created == 2
        assert stats.credits_remaining == 0


# -- job lifecycle ------------------------------------------------------------------------


async def test_lifecycle_with_one_worker(session: aiohttp.ClientSession) -> None:
    """With one worker jobs queue FIFO with exact positions, and a freed worker takes the next."""
    async with emulator(workers=1) as emu:
        first = await submit(session, emu, NEVER)
        second = await submit(session, emu, NEVER)
        third = await submit(session, emu, "[duration:1]")

        status, body = await get_json(session, first["status_url"])
        assert (status, body["status"]) == (202, "IN_PROGRESS")
        assert body["logs"] == []
        assert body["response_url"] == first["response_url"]
        status, body = await get_json(session, second["status_url"])
        assert (status, body["status"], body["queue_position"]) == (202, "IN_QUEUE", 0)
        assert set(body) == set(reply("status.in_queue"))
        _, body = await get_json(session, third["status_url"])
        assert body["queue_position"] == 1

        async with session.put(first["cancel_url"]) as response:
            assert response.status == 202
        _, body = await get_json(session, second["status_url"])
        assert body["status"] == "IN_PROGRESS"
        _, body = await get_json(session, third["status_url"])
        assert body["queue_position"] == 0

        async with session.put(second["cancel_url"]) as response:
            assert response.status == 202
        body = await wait_for(session, third["status_url"], completed)
        status, _ = await get_json(session, third["status_url"])
        assert status == 200
        assert body["metrics"] == {"inference_time": 1.0}
        assert "error" not in body
        assert body["logs"] == []

        job = emu.stats.jobs[third["request_id"]]
        second_job = emu.stats.jobs[second["request_id"]]
        assert job.started_at == second_job.completed_at  # the exact moment the worker freed
        assert job.completed_at is not None
        assert job.first_seen_completed_at is not None
        assert job.first_seen_completed_at >= job.completed_at
        assert job.status_polls >= 3
        assert emu.stats.peak_running_jobs == 1


async def test_queue_position_skips_cancelled_jobs(session: aiohttp.ClientSession) -> None:
    """Cancelling a queued job moves every job behind it up by one."""
    async with emulator(workers=1) as emu:
        await submit(session, emu, NEVER)
        queued = [await submit(session, emu, NEVER) for _ in range(4)]
        async with session.put(queued[1]["cancel_url"]) as response:
            assert response.status == 202
        positions = [(await get_json(session, q["status_url"]))[1] for q in queued]
    assert [p.get("queue_position") for p in positions] == [0, None, 1, 2]
    assert positions[1]["error_type"] == "CANCELED"


async def test_unlimited_workers_start_every_job(session: aiohttp.ClientSession) -> None:
    """workers=None starts each job at submit."""
    async with emulator() as emu:
        jobs = [await submit(session, emu, NEVER) for _ in range(5)]
        for job in jobs:
            _, body = await get_json(session, job["status_url"])
            assert body["status"] == "IN_PROGRESS"
        assert emu.stats.running_jobs == 5


async def test_unknown_request_is_404(session: aiohttp.ClientSession) -> None:
    """Status and result of an unknown id answer 404 with a detail string."""
    async with emulator() as emu:
        base = f"{emu.base_url}/v1/queue/gpt_image_1/requests/mmsu_nope"
        for suffix in ("status", "response"):
            status, body = await get_json(session, f"{base}/{suffix}")
            assert (status, body) == (404, {"detail": "Request not found: mmsu_nope"})


async def test_progress_on_running_jobs(session: aiohttp.ClientSession) -> None:
    """progress=True adds a 0..1 progress to running status replies."""
    async with emulator(progress=True) as emu:
        job = await submit(session, emu, NEVER)
        _, body = await get_json(session, job["status_url"])
    assert 0.0 <= body["progress"] <= 1.0


async def test_duration_directive_and_sigma(session: aiohttp.ClientSession) -> None:
    """[duration:S] fixes a job's emulated time; sigma draws repeatable log-normal times."""
    times = []
    for _ in range(2):
        async with emulator(job_seconds=10, duration_sigma=0.5, seed=7) as emu:
            for _ in range(3):
                await submit(session, emu)
            fixed = await submit(session, emu, "[duration:12.5] apple")
            body = await wait_for(session, fixed["status_url"], completed)
            assert body["metrics"]["inference_time"] == 12.5
            times.append([job.emulated_seconds for job in emu.stats.jobs.values()][:3])
    assert times[0] == times[1]
    assert len(set(times[0])) == 3


# -- dialects -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("upper", ["IN_PROGRESS", "IN_QUEUE", "COMPLETED", "COMPLETED", "COMPLETED"]),
        ("lower", ["in_progress", "in_queue", "completed", "completed", "completed"]),
        ("aliases", ["PROCESSING", "PENDING", "COMPLETED", "FAILED", "CANCELLED"]),
    ],
)
async def test_status_spelling(
    session: aiohttp.ClientSession, spelling: str, expected: list[str]
) -> None:
    """Each status_spelling names running, queued, succeeded, failed and cancelled jobs."""
    async with emulator(status_spelling=spelling, workers=1) as emu:
        running = await submit(session, emu, NEVER)
        queued = await submit(session, emu)
        seen = [
            (await get_json(session, job["status_url"]))[1]["status"] for job in (running, queued)
        ]
        async with session.put(running["cancel_url"]) as response:
            assert response.status == 202
        seen.append((await wait_for(session, queued["status_url"], completed))["status"])
        failed = await submit(session, emu, "[fail:INFERENCE_FAILURE]")
        seen.append((await wait_for(session, failed["status_url"], completed))["status"])
        seen.append((await get_json(session, running["status_url"]))[1]["status"])
    assert seen == expected


@pytest.mark.parametrize(
    ("prompt", "error_type"),
    [("[fail:CONTENT_BLOCKED]", "CONTENT_BLOCKED"), (NEVER, "CANCELED")],
)
async def test_error_style_string(
    session: aiohttp.ClientSession, prompt: str, error_type: str
) -> None:
    """error_style='string' ends failed and cancelled jobs with error and error_type."""
    async with emulator() as emu:
        job = await submit(session, emu, prompt)
        if prompt == NEVER:
            async with session.put(job["cancel_url"]) as response:
                assert response.status == 202
        body = await wait_for(session, job["status_url"], completed)
    assert body["status"] == "COMPLETED"
    assert body["error_type"] == error_type
    assert isinstance(body["error"], str)
    assert "metrics" not in body


async def test_error_style_object(session: aiohttp.ClientSession) -> None:
    """error_style='object' answers error {code, message} and provider_error, as documented."""
    async with emulator(error_style="object") as emu:
        job = await submit(session, emu, "[fail:REQUEST_INVALID]")
        body = await wait_for(session, job["status_url"], completed)
    sample = reply("status.error_object")
    assert set(sample) <= set(body)
    assert body["error"]["code"] == "REQUEST_INVALID"
    assert set(body["error"]) == set(sample["error"])
    assert set(body["provider_error"]) == set(sample["provider_error"])


async def test_job_failure_rates(session: aiohttp.ClientSession) -> None:
    """Faults.job_failure_rates fails jobs with the given error type."""
    faults = Faults(job_failure_rates={"INFERENCE_TIMEOUT": 1.0})
    async with emulator(faults=faults) as emu:
        job = await submit(session, emu)
        body = await wait_for(session, job["status_url"], completed)
    assert body["error_type"] == "INFERENCE_TIMEOUT"


# -- results and images -------------------------------------------------------------------


async def fetch_image(
    url: str, headers: dict[str, str] | None = None
) -> tuple[aiohttp.ClientResponse, bytes]:
    """Download an image without any key, as a client must do on the CDN.

    ``headers`` receives the reply headers before the body is read, for replies cut short.
    """
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        if headers is not None:
            headers.update(response.headers)
        return response, await response.read()


@pytest.mark.parametrize(
    ("shape", "output_format", "size"),
    [
        ("outputs", "jpeg", "1536x1024"),
        ("images", "webp", "1024x1536"),
        ("output_content", "png", "auto"),
        ("openai_b64", "png", "1024x1024"),
        ("openai_url", "webp", "1024x1024"),
        ("data_uri", "jpeg", "1024x1024"),
    ],
)
async def test_result_shapes_serve_real_images(
    session: aiohttp.ClientSession, shape: str, output_format: str, size: str
) -> None:
    """Each result_shape has the sample's keys, n images in order, decodable at format and size."""
    async with emulator(result_shape=shape) as emu:
        job = await submit(session, emu, n=2, output_format=output_format, size=size)
        await wait_for(session, job["status_url"], completed)
        status, body = await get_json(session, job["response_url"])
        assert status == 200
        sample = reply(
            {
                "images": "result.images_fal",
                "openai_url": "result.openai_b64",
            }.get(shape, f"result.{shape}")
        )
        assert set(body) == set(sample)
        if shape in ("outputs", "images"):
            records = body[shape]
            assert set(sample[shape][0]) <= set(records[0])
            assert [r["file_name"].split(".")[0] for r in records] == ["0", "1"]
            urls = [r["url"] for r in records]
        elif shape == "output_content":
            urls = [item["url"] for item in body["output"][0]["content"]]
        elif shape == "openai_url":
            urls = [item["url"] for item in body["data"]]
        else:
            urls = []
        blobs = [(await fetch_image(url))[1] for url in urls]
        if shape == "openai_b64":
            blobs = [base64.b64decode(item["b64_json"]) for item in body["data"]]
        if shape == "data_uri":
            prefix = f"data:image/{output_format};base64,"
            assert all(o["url"].startswith(prefix) for o in body["outputs"])
            blobs = [base64.b64decode(o["url"][len(prefix) :]) for o in body["outputs"]]
    if urls:
        assert all(url.startswith(emu.cdn_url + "/images/") for url in urls)
        assert urls[0] != urls[1]
    assert len(blobs) == 2
    expected = (1024, 1024) if size == "auto" else tuple(map(int, size.split("x")))
    for blob in blobs:
        image = decode(blob)
        assert image.format == output_format.upper()
        assert image.size == expected


async def test_outputs_records_match_the_served_file(session: aiohttp.ClientSession) -> None:
    """An outputs record's content_type, file_size and size match what the CDN serves."""
    async with emulator() as emu:
        job = await submit(session, emu, size="1024x1536", background="transparent")
        await wait_for(session, job["status_url"], completed)
        _, body = await get_json(session, job["response_url"])
        record = body["outputs"][0]
        response, data = await fetch_image(record["url"])
    assert body["request_id"] == job["request_id"]
    assert body["metadata"] == {"prompt": "a red apple"}
    assert response.headers["Content-Type"] == record["content_type"] == "image/png"
    assert int(response.headers["Content-Length"]) == len(data) == record["file_size"]
    image = decode(data)
    assert (image.width, image.height) == (record["width"], record["height"]) == (1024, 1536)
    assert image.mode == "RGBA"


@pytest.mark.parametrize("output_format", ["png", "jpeg", "webp"])
async def test_image_bytes_padding_still_decodes(
    session: aiohttp.ClientSession, output_format: str
) -> None:
    """image_bytes pads each image to about that size and it still decodes."""
    target = 300_000
    async with emulator(image_bytes=target) as emu:
        job = await submit(session, emu, output_format=output_format)
        await wait_for(session, job["status_url"], completed)
        _, body = await get_json(session, job["response_url"])
        _, data = await fetch_image(body["outputs"][0]["url"])
    assert abs(len(data) - target) < 64
    assert decode(data).format == output_format.upper()


async def test_cdn_records_headers_and_refuses_unknown_images(
    session: aiohttp.ClientSession,
) -> None:
    """The CDN keeps every request's headers (so key leaks show) and 404s unknown images."""
    async with emulator() as emu:
        job = await submit(session, emu)
        await wait_for(session, job["status_url"], completed)
        _, body = await get_json(session, job["response_url"])
        url = body["outputs"][0]["url"]
        await fetch_image(url)
        async with session.get(url) as response:  # this session sends the key
            assert response.status == 200
        missing, _ = await fetch_image(url.replace("/0.png", "/5.png"))
        assert missing.status == 404
        headers = emu.stats.image_request_headers
        assert len(headers) == 3
        assert "Authorization" not in headers[0]
        assert headers[1]["Authorization"] == AUTH["Authorization"]
        assert emu.stats.to_json()["image_requests_with_authorization"] == 1


@pytest.mark.parametrize("style", ["202", "400"])
async def test_result_not_ready(session: aiohttp.ClientSession, style: str) -> None:
    """An unfinished job's result is 202 with a status body, or 400 'still in progress'."""
    async with emulator(not_ready_style=style) as emu:
        job = await submit(session, emu, NEVER)
        status, body = await get_json(session, job["response_url"])
    if style == "202":
        assert status == 202
        assert set(reply("result.not_ready")) <= set(body)
        assert body["status"] == "IN_PROGRESS"
    else:
        assert (status, body) == (400, reply("result.still_in_progress_400"))


async def test_failed_job_result(session: aiohttp.ClientSession) -> None:
    """A failed job's result is 200 with status COMPLETED, error and error_type."""
    async with emulator() as emu:
        job = await submit(session, emu, "[fail:CONTENT_BLOCKED]")
        await wait_for(session, job["status_url"], completed)
        status, body = await get_json(session, job["response_url"])
        assert emu.stats.jobs[job["request_id"]].result_requests == 1
    assert status == 200
    assert set(body) == set(reply("status.blocked"))
    assert body["error_type"] == "CONTENT_BLOCKED"


# -- cancel -------------------------------------------------------------------------------


async def test_cancel_replies(session: aiohttp.ClientSession) -> None:
    """Cancel answers 202 for a live job, 400 once terminal, 404 for an unknown id."""
    async with emulator() as emu:
        job = await submit(session, emu, NEVER)
        async with session.put(job["cancel_url"]) as response:
            assert (response.status, await response.json()) == (
                202,
                reply("cancel.requested_202"),
            )
        async with session.put(job["cancel_url"]) as response:
            assert (response.status, await response.json()) == (
                400,
                reply("cancel.already_completed_400"),
            )
        unknown = job["cancel_url"].replace(job["request_id"], "mmsu_nope")
        async with session.put(unknown) as response:
            assert (response.status, await response.json()) == (404, reply("cancel.not_found_404"))
        record = emu.stats.jobs[job["request_id"]]
        assert record.cancelled
        assert record.cancel_requests == 2
        assert emu.stats.running_jobs == 0


# -- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [429, 500, 502, 503])
async def test_refusing_faults_on_submit_create_no_job(
    session: aiohttp.ClientSession, code: int
) -> None:
    """429, 500, 502 and 503 on submit answer that error and create no job."""
    faults = Faults(**{f"rate_{code}": 1.0}, retry_after=2)
    async with emulator(faults=faults) as emu:
        url = f"{emu.base_url}/v1/queue/gpt_image_1"
        async with session.post(url, json={"prompt": "x"}) as response:
            assert response.status == code
            text = await response.text()
            headers = response.headers
        stats = emu.stats
        assert stats.jobs_created == 0
        assert stats.requests["submit"] == 1
        assert stats.faults_injected[f"submit:{code}"] == 1
    if code == 429:
        assert headers["Retry-After"] == "2"
        assert set(json.loads(text)) == set(reply("error.rate_limited_429"))
    elif code == 502:
        assert headers["Content-Type"].startswith("text/html")
        assert "502 Bad Gateway" in text
    else:
        json.loads(text)
    assert "X-Request-Id" in headers


async def test_429_without_retry_after(session: aiohttp.ClientSession) -> None:
    """retry_after=None sends a 429 with no Retry-After header."""
    async with emulator(faults=Faults(rate_429=1.0, retry_after=None)) as emu:
        url = f"{emu.base_url}/v1/queue/gpt_image_1"
        async with session.post(url, json={"prompt": "x"}) as response:
            assert response.status == 429
            assert "Retry-After" not in response.headers


async def test_reset_drops_the_connection(session: aiohttp.ClientSession) -> None:
    """rate_reset closes the connection with no reply, and a submit creates nothing."""
    async with emulator(faults=Faults(rate_reset=1.0)) as emu:
        url = f"{emu.base_url}/v1/queue/gpt_image_1"
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.post(url, json={"prompt": "x"}) as response:
                await response.read()
        assert emu.stats.jobs_created == 0
        assert emu.stats.requests["submit"] == 1


async def test_malformed_status_is_invalid_json(session: aiohttp.ClientSession) -> None:
    """rate_malformed answers 200 with a body that does not parse as JSON."""
    faults = Faults(rate_malformed=1.0, calls=frozenset({"status"}))
    async with emulator(faults=faults) as emu:
        job = await submit(session, emu)
        async with session.get(job["status_url"]) as response:
            assert response.status == 200
            text = await response.text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_slow_submit_creates_the_job_then_delays(session: aiohttp.ClientSession) -> None:
    """rate_slow on submit creates the job while the reply is still held back."""
    faults = Faults(rate_slow=1.0, slow_seconds=60, calls=frozenset({"submit"}))
    async with emulator(faults=faults) as emu:
        url = f"{emu.base_url}/v1/queue/gpt_image_1"
        pending = asyncio.ensure_future(session.post(url, json={"prompt": "x"}))
        try:
            await until(lambda: emu.stats.jobs_created > 0)
            assert not pending.done()
            assert emu.stats.concurrent_requests["submit"] == 1
        finally:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        assert emu.stats.faults_injected["submit:slow"] == 1


async def test_faults_hit_only_the_listed_calls(session: aiohttp.ClientSession) -> None:
    """Faults.calls limits the HTTP faults to the named kinds."""
    faults = Faults(rate_503=1.0, calls=frozenset({"result"}))
    async with emulator(faults=faults) as emu:
        job = await submit(session, emu)
        body = await wait_for(session, job["status_url"], completed)
        assert body["status"] == "COMPLETED"
        status, _ = await get_json(session, job["response_url"])
        assert status == 503
        assert emu.stats.jobs[job["request_id"]].result_requests == 1


@pytest.mark.parametrize("fault", ["reset", "truncated", "503"])
async def test_image_faults(session: aiohttp.ClientSession, fault: str) -> None:
    """Image downloads can be reset, cut short under a full Content-Length, or refused."""
    faults = Faults(**{f"rate_{fault}": 1.0}, calls=frozenset({"image"}))
    async with emulator(faults=faults, image_bytes=1_000_000) as emu:
        job = await submit(session, emu)
        await wait_for(session, job["status_url"], completed)
        _, body = await get_json(session, job["response_url"])
        url = body["outputs"][0]["url"]
        if fault == "503":
            response, _ = await fetch_image(url)
            assert response.status == 503
            return
        expected = aiohttp.ClientPayloadError if fault == "truncated" else aiohttp.ClientError
        headers: dict[str, str] = {}
        with pytest.raises(expected):
            await fetch_image(url, headers)
        if fault == "truncated":
            assert headers["Content-Length"] == "1000000"
        assert emu.stats.faults_injected[f"image:{fault}"] >= 1


# -- counters, control endpoint, shell entry ----------------------------------------------


async def test_counters_and_peaks(session: aiohttp.ClientSession) -> None:
    """Requests, jobs, running/active peaks and concurrent-request peaks are counted."""
    faults = Faults(rate_slow=1.0, slow_seconds=60, calls=frozenset({"status"}))
    async with emulator(workers=2, faults=faults) as emu:
        jobs = [await submit(session, emu, NEVER) for _ in range(5)]
        pending = [asyncio.ensure_future(session.get(job["status_url"])) for job in jobs]
        try:
            await until(lambda: emu.stats.concurrent_requests["status"] == 5)
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        stats = emu.stats
        assert stats.requests["submit"] == stats.jobs_created == 5
        assert stats.requests["status"] == 5
        assert stats.peak_concurrent_requests["status"] == 5
        assert stats.peak_concurrent_requests["all"] == 5
        assert stats.peak_running_jobs == 2
        assert stats.peak_active_jobs == 5
        assert [job.status_polls for job in stats.jobs.values()] == [1] * 5


async def test_control_endpoint_reports_and_resets(session: aiohttp.ClientSession) -> None:
    """GET /_emulator/stats returns the summary; POST /_emulator/reset clears it; neither counts."""
    async with emulator() as emu, aiohttp.ClientSession() as anonymous:
        job = await submit(session, emu)
        await wait_for(session, job["status_url"], completed)
        root = emu.base_url.removesuffix("/model")
        status, summary = await get_json(anonymous, f"{root}/_emulator/stats")
        assert status == 200
        assert summary["jobs_created"] == 1
        assert summary["requests"]["submit"] == 1
        assert summary["outcomes"] == {"OK": 1}
        assert len(summary["timings"]["report_lag_seconds"]) == 1
        async with anonymous.post(f"{root}/_emulator/reset") as response:
            assert response.status == 200
        _, summary = await get_json(anonymous, f"{root}/_emulator/stats")
        assert summary["jobs_created"] == 0
        assert summary["requests"] == {}


def test_command_line_builds_the_config() -> None:
    """Shell options map onto EmulatorConfig and Faults fields."""
    argv = "--workers 3 --fail-rate 0.1 --fail content_blocked=0.2 --rate-429 0.5"
    argv += " --retry-after none --fault-calls status,result --result-shape data_uri"
    config = config_from_args(build_parser().parse_args(argv.split()))
    assert config.workers == 3
    assert config.result_shape == "data_uri"
    assert dict(config.faults.job_failure_rates) == {
        "INFERENCE_FAILURE": 0.1,
        "CONTENT_BLOCKED": 0.2,
    }
    assert config.faults.rate_429 == 0.5
    assert config.faults.retry_after is None
    assert config.faults.calls == {"status", "result"}


def test_main_refuses_remote_hosts() -> None:
    """A non-loopback --host is refused unless --allow-remote is given."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--host", "192.0.2.1"])
    assert exit_info.value.code == 2


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def test_help_runs() -> None:
    """``python -m odiqueue.testing --help`` exits 0, warning-free, and documents its options."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "odiqueue.testing", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--rate-429" in done.stdout
    assert "--workers" in done.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child is POSIX-only")
def test_shell_entry_serves_until_sigint() -> None:
    """The shell entry prints its URLs, serves requests and exits 0 on SIGINT."""
    with subprocess.Popen(
        [sys.executable, "-W", "error", "-m", "odiqueue.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=_env(),
    ) as child:
        try:
            assert child.stdout is not None
            lines = [child.stdout.readline() for _ in range(5)]
            assert lines[-1].startswith("Press Ctrl-C")
            stats_url = lines[3].split()[-1]
            with urllib.request.urlopen(stats_url, timeout=30) as response:
                assert json.load(response)["jobs_created"] == 0
            child.send_signal(signal.SIGINT)
            assert child.wait(timeout=30) == 0
        finally:
            if child.poll() is None:
                child.kill()
