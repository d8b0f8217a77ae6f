"""Slow and hostile servers: calls that never answer, oversized and inflating replies,
redirects away from the API, and reply bodies built to break a parser.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from odiqueue import (
    APIError,
    AsyncClient,
    Image,
    ImageRequest,
    Limits,
    OdiqueueError,
    RequestTimeoutError,
    ResponseTooLargeError,
    RetryPolicy,
    SubmissionUncertainError,
    Timeouts,
    instant_waits,
)
from odiqueue.testing import Emulator, EmulatorConfig, Faults
from tests.helpers import PNG_1X1, collect, until
from tests.scripted import Scripted, ScriptedServer, scripted_server

pytestmark = pytest.mark.anyio

KEY = "sk-hostile-test-key-77778888"
Q = "/model/v1/queue/gpt_image_1"
JOB = f"{Q}/requests/j1"
JOB2_STATUS = f"{Q}/requests/j2/status"
PNG = PNG_1X1
HANG = 3600.0  # "never": the client's read timeout is what ends the wait
READ_TIMEOUT = 0.3
QUICK_RETRY = RetryPolicy(attempts=20, initial=0.01, maximum=0.05)


def client_for(url: str, **kw: Any) -> AsyncClient:
    kw.setdefault("retry", RetryPolicy(attempts=3, initial=0.01, maximum=0.05))
    return AsyncClient(KEY, base_url=url, **kw)


def leftovers(out: Path) -> list[str]:
    """Everything in ``out`` but the batch's own bookkeeping."""
    return sorted(
        p.name for p in out.iterdir() if p.name not in ("manifest.jsonl", ".odiqueue.lock")
    )


def has_key(headers: dict[str, str]) -> bool:
    return any(name.lower() == "authorization" for name in headers)


# --- calls that never answer ---------------------------------------------------------------------


async def clear_faults_once_polled(emu: Emulator) -> None:
    """Let the first poll of the job (status or result) hang, then heal the server."""
    await until(lambda: emu.stats.requests["status"] + emu.stats.requests["result"] > 0)
    emu.set_faults(Faults())


@pytest.mark.parametrize("mode", ["wait", "generate_many"])
async def test_hanging_poll_times_out_and_the_job_is_still_followed(
    tmp_path: Path, mode: str
) -> None:
    """A poll that never answers ends at the read timeout; polling goes on to the images."""
    hang = Faults(rate_slow=1.0, slow_seconds=HANG, calls=frozenset({"status", "result"}))
    async with (
        Emulator(EmulatorConfig(job_seconds=0.05, faults=hang)) as emu,
        client_for(emu.base_url, timeouts=Timeouts(read=READ_TIMEOUT), retry=QUICK_RETRY) as c,
    ):
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(clear_faults_once_polled, emu)
                if mode == "wait":
                    result = await c.wait(await c.submit("a lamp"))
                    assert len(result.images) == 1
                else:
                    (outcome,) = await collect(c, [("lamp", ImageRequest("a lamp"))], tmp_path)
                    assert outcome.ok, outcome.error
                    assert [p.name for p in outcome.paths] == ["lamp_0.png"]
        stats = emu.stats
    hung = stats.faults_injected["status:slow"] + stats.faults_injected["result:slow"]
    assert hung >= 1
    (job,) = stats.jobs.values()
    assert job.status_polls + job.result_requests > hung  # asked again after the timeout
    assert stats.jobs_created == 1


async def test_a_call_that_never_answers_raises_request_timeout() -> None:
    """A status call that hangs every time is retried, then raises RequestTimeoutError."""
    hang = Faults(rate_slow=1.0, slow_seconds=HANG, calls=frozenset({"status"}))
    async with (
        Emulator(EmulatorConfig(job_seconds=60, faults=hang)) as emu,
        client_for(emu.base_url, timeouts=Timeouts(read=READ_TIMEOUT)) as c,
    ):
        handle = await c.submit("a lamp")
        with instant_waits(), anyio.fail_after(30), pytest.raises(RequestTimeoutError) as caught:
            await c.status(handle)
        assert emu.stats.requests["status"] == 3  # RetryPolicy.attempts
    assert caught.value.request_id == handle.request_id


# --- replies over the size caps ------------------------------------------------------------------


async def test_image_over_the_cap_is_refused_without_a_file(tmp_path: Path) -> None:
    """An image larger than max_image_bytes fails its item with ResponseTooLargeError, no file."""
    config = EmulatorConfig(image_bytes=300_000)
    limits = Limits(max_image_bytes=100_000)
    async with Emulator(config) as emu, client_for(emu.base_url, limits=limits) as c:
        with instant_waits(), anyio.fail_after(30):
            (outcome,) = await collect(c, [("big", ImageRequest("a big lamp"))], tmp_path / "b")
            result = await c.wait(await c.submit("another big lamp"))
            with pytest.raises(ResponseTooLargeError, match="cap"):
                await c.download(result.images[0], tmp_path / "direct.png")
        image_requests = emu.stats.requests["image"]
    assert isinstance(outcome.error, ResponseTooLargeError)
    assert outcome.paths == ()
    assert leftovers(tmp_path / "b") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    assert image_requests == 2  # refused at once: a too-large image is not fetched again


async def test_gzip_image_inflating_past_the_cap_is_refused(tmp_path: Path) -> None:
    """A small gzip body that inflates past max_image_bytes is cut off; no file, no .part."""
    bomb = gzip.compress(PNG + bytes(3_000_000))
    async with scripted_server() as server:
        headers = {"Content-Encoding": "gzip", "Content-Type": "image/png"}
        server.script("GET", "/bomb.png", Scripted(200, bomb, headers))
        async with client_for(server.url, limits=Limits(max_image_bytes=1_000_000)) as c:
            with instant_waits(), pytest.raises(ResponseTooLargeError):
                await c.download(Image(url=server.url + "/bomb.png"), tmp_path / "x.png")
    assert len(bomb) < 1_000_000
    assert list(tmp_path.iterdir()) == []
    assert server.count("GET", "/bomb.png") == 1


async def test_gzip_encoded_image_under_the_cap_is_saved(tmp_path: Path) -> None:
    """An image served with Content-Encoding: gzip is saved as its decoded bytes."""
    async with scripted_server() as server:
        headers = {"Content-Encoding": "gzip", "Content-Type": "image/png"}
        server.script("GET", "/img.png", Scripted(200, gzip.compress(PNG), headers))
        async with client_for(server.url) as c:
            with instant_waits():
                saved = await c.download(Image(url=server.url + "/img.png"), tmp_path / "x.png")
    assert saved.path.read_bytes() == PNG


async def test_json_reply_over_the_cap_is_refused() -> None:
    """A status reply over max_json_bytes raises ResponseTooLargeError and is not asked again."""
    big = {"status": "IN_PROGRESS", "padding": "x" * 200_000}
    async with scripted_server() as server:
        server.script("GET", f"{JOB}/status", Scripted(200, big))
        async with client_for(server.url + "/model", limits=Limits(max_json_bytes=65_536)) as c:
            with instant_waits(), pytest.raises(ResponseTooLargeError) as caught:
                await c.status("j1")
    assert caught.value.request_id == "j1"
    assert server.count("GET", f"{JOB}/status") == 1


async def test_submit_reply_over_the_cap_is_uncertain_and_not_resent() -> None:
    """An oversized submit reply may hide a paid job: SubmissionUncertainError, one POST."""
    big = {"request_id": "j1", "padding": "x" * 200_000}
    async with scripted_server() as server:
        server.script("POST", Q, Scripted(200, big))
        async with client_for(server.url + "/model", limits=Limits(max_json_bytes=65_536)) as c:
            with instant_waits(), pytest.raises(SubmissionUncertainError):
                await c.submit("a lamp")
    assert server.count("POST", Q) == 1


async def test_gzip_json_inflating_past_the_cap_is_refused() -> None:
    """A gzip JSON reply is measured as it inflates: past max_json_bytes it is refused."""
    inflated = json.dumps({"status": "IN_PROGRESS", "padding": " " * 2_000_000}).encode()
    small = json.dumps({"status": "IN_QUEUE", "queue_position": 4}).encode()
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    async with scripted_server() as server:
        server.script("GET", f"{JOB}/status", Scripted(200, gzip.compress(inflated), headers))
        server.script(
            "GET", f"{Q}/requests/j2/status", Scripted(200, gzip.compress(small), headers)
        )
        async with client_for(server.url + "/model", limits=Limits(max_json_bytes=65_536)) as c:
            with instant_waits(), pytest.raises(ResponseTooLargeError):
                await c.status("j1")
            queued = await c.status("j2")  # a gzip reply within the cap reads normally
    assert len(gzip.compress(inflated)) < 65_536
    assert queued.position == 4  # type: ignore[union-attr]
    assert server.count("GET", f"{JOB}/status") == 1


# --- redirects -----------------------------------------------------------------------------------

REDIRECTED_CALLS = [
    ("status", "GET", f"{JOB}/status", 302, Scripted(200, {"status": "IN_QUEUE"})),
    ("result", "GET", f"{JOB}/response", 307, Scripted(202, {"status": "IN_PROGRESS"})),
    ("cancel", "PUT", f"{JOB}/cancel", 308, Scripted(202, {"status": "CANCELLATION_REQUESTED"})),
    ("submit", "POST", Q, 307, Scripted(200, {"request_id": "j1"})),
]


async def call(c: AsyncClient, name: str) -> object:
    if name == "submit":
        return await c.submit("a lamp")
    return await getattr(c, name)("j1")


@pytest.mark.parametrize(
    ("name", "method", "path", "code", "answer"),
    REDIRECTED_CALLS,
    ids=[row[0] for row in REDIRECTED_CALLS],
)
async def test_redirect_to_another_host_carries_no_key(
    name: str, method: str, path: str, code: int, answer: Scripted
) -> None:
    """Each API call redirected to another origin arrives there without Authorization."""
    async with scripted_server() as api, scripted_server() as other:
        api.script(method, path, Scripted(code, b"", {"Location": other.url + "/elsewhere"}))
        other.script(method, "/elsewhere", answer)
        async with client_for(api.url + "/model") as c:
            with instant_waits(), anyio.fail_after(10):
                await call(c, name)
    assert [seen.method for seen in other.seen] == [method]
    assert not has_key(other.seen[0].headers)
    assert api.seen[0].headers["Authorization"] == f"Bearer {KEY}"


async def test_redirect_within_the_api_origin_keeps_the_key() -> None:
    """A redirect to another path of the API's own origin still authenticates."""
    async with scripted_server() as api:
        api.script("GET", f"{JOB}/status", Scripted(302, b"", {"Location": "/model/moved"}))
        api.script("GET", "/model/moved", Scripted(200, {"status": "IN_QUEUE"}))
        async with client_for(api.url + "/model") as c:
            await c.status("j1")
    assert [s.path for s in api.seen] == [f"{JOB}/status", "/model/moved"]
    assert all(s.headers["Authorization"] == f"Bearer {KEY}" for s in api.seen)


async def test_redirect_bounce_back_through_a_foreign_host_is_bounded() -> None:
    """A redirect loop through a foreign host ends in an APIError; the key never reaches it."""
    async with scripted_server() as api, scripted_server() as other:
        api.script("GET", f"{JOB}/status", Scripted(302, b"", {"Location": other.url + "/x"}))
        other.script("GET", "/x", Scripted(302, b"", {"Location": api.url + f"{JOB}/status"}))
        async with client_for(api.url + "/model") as c:
            with anyio.fail_after(10), pytest.raises(APIError, match="redirects"):
                await c.status("j1")
    assert 1 <= len(other.seen) <= 5
    assert not any(has_key(s.headers) for s in other.seen)


# --- bodies built to break a parser -------------------------------------------------------------


BLOCKED = Scripted(200, {"status": "COMPLETED", "error": "no", "error_type": "CONTENT_BLOCKED"})


def script_job(server: ScriptedServer, submit: Scripted, first_poll: Scripted) -> None:
    """One job whose first poll (status or result) is hostile, and which then ends blocked."""
    server.script("POST", Q, submit)
    server.script("GET", f"{JOB}/status", first_poll, BLOCKED)
    server.script("GET", f"{JOB}/response", first_poll, BLOCKED)
    server.script("PUT", f"{JOB}/cancel", Scripted(400, {"status": "ALREADY_COMPLETED"}))


HOSTILE_BODIES = [
    pytest.param(
        Scripted(200, {"request_id": "j1"}),
        Scripted(200, '{"status": "IN_QUEUE", "queue_position": 1e999}'),
        id="infinite-queue-position",
    ),
    pytest.param(
        Scripted(200, {"request_id": "j1", "queue_position": "\u00b2"}),
        BLOCKED,
        id="superscript-digit-in-submit-reply",
    ),
    pytest.param(
        Scripted(200, {"request_id": "j1"}),
        Scripted(500, "[" * 100_000),
        id="deeply-nested-error-body",
    ),
    pytest.param(
        Scripted(200, {"request_id": "j1"}),
        Scripted(200, '{"status": "COMPLETED", "outputs": [{"url": 5}]}'),
        id="wrongly-typed-image-url",
    ),
]


@pytest.mark.parametrize(("submit", "first_poll"), HOSTILE_BODIES)
async def test_a_hostile_reply_fails_its_own_item_not_the_batch(
    tmp_path: Path, submit: Scripted, first_poll: Scripted
) -> None:
    """A reply built to break a parser ends as that item's typed failure, not a crash."""
    async with scripted_server() as server:
        script_job(server, submit, first_poll)
        async with client_for(server.url + "/model") as c:
            with instant_waits(), anyio.fail_after(30):
                (outcome,) = await collect(c, [("lamp", ImageRequest("a lamp"))], tmp_path)
    assert not outcome.ok
    assert isinstance(outcome.error, OdiqueueError)
    assert server.count("POST", Q) == 1
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("bad", ["https://odirouter.ai:99999/x/status", "http://[::1/status"])
async def test_submit_reply_with_a_url_that_does_not_parse_keeps_the_job(bad: str) -> None:
    """A status URL that is not a URL is not trusted: the paid job is kept, by its id, and
    followed through the API's own URLs (no bare ValueError after the job exists)."""
    async with scripted_server() as server:
        server.script("POST", Q, Scripted(200, {"request_id": "j1", "status_url": bad}))
        server.script("GET", f"{JOB}/status", Scripted(200, {"status": "IN_QUEUE"}))
        async with client_for(server.url + "/model") as client:
            handle = await client.submit("a mug")
            status = await client.status(handle)
        assert handle.request_id == "j1"
        assert handle.status_url == f"{server.url}{JOB}/status"
        assert status.request_id == "j1"


async def test_bad_urls_from_a_finished_job_fail_its_item_only(tmp_path: Path) -> None:
    """An image URL or a redirect Location that does not parse is an error of that item; the
    batch goes on with the others."""
    async with scripted_server() as server:
        server.script(
            "POST", Q, Scripted(200, {"request_id": "j1"}), Scripted(200, {"request_id": "j2"})
        )
        bad_image = {"outputs": [{"url": "https://cdn.example:99999/0.png"}]}
        server.script("GET", f"{JOB}/response", Scripted(200, bad_image))
        server.script(
            "GET", f"{Q}/requests/j2/response", Scripted(302, "", {"Location": "http://[::1/x"})
        )
        async with client_for(server.url + "/model") as client:
            with instant_waits():
                outcomes = await collect(client, ["one", "two"], tmp_path)
    errors = sorted(type(o.error).__name__ for o in outcomes)
    assert errors == ["APIError", "DecodeError"]
    assert "not a URL" in str(outcomes[0].error)
    assert "not a URL" in str(outcomes[1].error)
