"""Retry, error and security rules of AsyncClient, pinned against a scripted local server."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from odiqueue import (
    APIError,
    AsyncClient,
    AuthenticationError,
    CancelOutcome,
    ConnectError,
    Failed,
    Image,
    ImageResult,
    InsufficientCreditsError,
    InvalidRequestError,
    JobFailedError,
    NotFoundError,
    PermissionDeniedError,
    Queued,
    RateLimitError,
    RetryPolicy,
    Running,
    ServerError,
    SubmissionUncertainError,
    Timeouts,
    TransportError,
    UnsafeURLError,
    _backoff,
    instant_waits,
)
from tests.helpers import PNG_1X1, reply
from tests.scripted import Scripted, ScriptedServer, scripted_server

pytestmark = pytest.mark.anyio

KEY = "sk-test-0000111122223333abcd"
Q = "/model/v1/queue/gpt_image_1"
RID = "job1"
STATUS = f"{Q}/requests/{RID}/status"
RESULT = f"{Q}/requests/{RID}/response"
CANCEL = f"{Q}/requests/{RID}/cancel"
PNG = PNG_1X1


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Record every wait odiqueue asks for, and skip it."""
    asked: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr(_backoff, "sleep", fake_sleep)
    return asked


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with scripted_server() as running:
        yield running


def client(server: ScriptedServer, **kw: Any) -> AsyncClient:
    kw.setdefault("retry", RetryPolicy(attempts=4))
    return AsyncClient(KEY, base_url=server.url + "/model", **kw)


def submitted(server: ScriptedServer) -> dict[str, Any]:
    base = server.url + f"{Q}/requests/{RID}"
    return {
        "request_id": RID,
        "status_url": base + "/status",
        "response_url": base + "/response",
        "cancel_url": base + "/cancel",
        "queue_position": 0,
    }


# --- retries of idempotent calls ------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_status_retried_on_transient_statuses(server: ScriptedServer, status: int) -> None:
    """status() retries 408, 429 and 5xx gateway errors, then returns the status."""
    server.script(
        "GET", STATUS, Scripted(status, {"error": "busy"}), Scripted(200, {"status": "IN_PROGRESS"})
    )
    with instant_waits():
        async with client(server) as c:
            assert isinstance(await c.status(RID), Running)
    assert server.count("GET", STATUS) == 2


async def test_status_retried_after_connection_reset(server: ScriptedServer) -> None:
    """A dropped connection on a status call is retried."""
    server.script("GET", STATUS, Scripted(drop=True), Scripted(200, {"status": "IN_PROGRESS"}))
    with instant_waits():
        async with client(server) as c:
            assert isinstance(await c.status(RID), Running)
    assert server.count("GET", STATUS) == 2


async def test_status_retried_after_malformed_json(server: ScriptedServer) -> None:
    """A 200 whose body is not JSON (a proxy glitch) is retried for idempotent calls."""
    server.script("GET", STATUS, Scripted(200, "{not json"), Scripted(200, {"status": "IN_QUEUE"}))
    with instant_waits():
        async with client(server) as c:
            await c.status(RID)
    assert server.count("GET", STATUS) == 2


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (402, InsufficientCreditsError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, InvalidRequestError),
    ],
)
async def test_client_errors_never_retried(
    server: ScriptedServer, status: int, cls: type[Exception]
) -> None:
    """400, 401, 402, 403, 404 and 422 raise at once, after exactly one request."""
    server.script("GET", STATUS, Scripted(status, {"error": "no"}, {"X-Request-Id": "gw_9"}))
    with instant_waits():
        async with client(server) as c:
            with pytest.raises(cls) as caught:
                await c.status(RID)
    assert server.count("GET", STATUS) == 1
    assert caught.value.provider_request_id == "gw_9"  # type: ignore[attr-defined]
    assert caught.value.request_id == RID  # type: ignore[attr-defined]


async def test_retries_capped_by_attempts(server: ScriptedServer) -> None:
    """After RetryPolicy.attempts tries the last error is raised."""
    server.script("GET", STATUS, Scripted(503, {"error": "down"}))
    with instant_waits():
        async with client(server, retry=RetryPolicy(attempts=3)) as c:
            with pytest.raises(ServerError, match="down"):
                await c.status(RID)
    assert server.count("GET", STATUS) == 3


async def test_retries_capped_by_total_time(server: ScriptedServer, sleeps: list[float]) -> None:
    """A retry whose wait would pass RetryPolicy.timeout is not made."""
    server.script("GET", STATUS, Scripted(503, {}, {"Retry-After": "5"}))
    async with client(server, retry=RetryPolicy(attempts=100, timeout=12)) as c:
        with pytest.raises(ServerError):
            await c.status(RID)
    # Instant fake sleeps leave elapsed time near zero, so the cap is per-wait: 5 fits, so
    # it retries until attempts or time run out; here time is what stops it.
    assert server.count("GET", STATUS) >= 2
    assert all(s == 5.0 for s in sleeps)


async def test_retry_after_seconds_honoured(server: ScriptedServer, sleeps: list[float]) -> None:
    """A 429's Retry-After in seconds is the wait before the retry."""
    server.script(
        "GET",
        STATUS,
        Scripted(429, reply("error.rate_limited_429"), {"Retry-After": "2"}),
        Scripted(200, {"status": "IN_PROGRESS"}),
    )
    async with client(server) as c:
        await c.status(RID)
    assert sleeps == [pytest.approx(2.0, abs=0.5)]


async def test_retry_after_http_date_honoured(server: ScriptedServer, sleeps: list[float]) -> None:
    """A Retry-After HTTP date is waited for (about the time left until it)."""
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=20), usegmt=True)
    server.script(
        "GET",
        STATUS,
        Scripted(503, {}, {"Retry-After": when}),
        Scripted(200, {"status": "IN_PROGRESS"}),
    )
    async with client(server) as c:
        await c.status(RID)
    assert 15 <= sleeps[-1] <= 20


async def test_retry_after_beyond_cap_raises_with_value(server: ScriptedServer) -> None:
    """A Retry-After above max_retry_after raises RateLimitError carrying the value."""
    server.script(
        "GET", STATUS, Scripted(429, reply("error.rate_limited_429"), {"Retry-After": "3600"})
    )
    with instant_waits():
        async with client(server, retry=RetryPolicy(max_retry_after=60)) as c:
            with pytest.raises(RateLimitError) as caught:
                await c.status(RID)
    assert caught.value.retry_after == 3600
    assert server.count("GET", STATUS) == 1


async def test_429_slows_every_caller(server: ScriptedServer, sleeps: list[float]) -> None:
    """After a 429 with Retry-After, the next call by anyone waits out the cool-down first."""
    server.script(
        "GET",
        STATUS,
        Scripted(429, {}, {"Retry-After": "30"}),
        Scripted(200, {"status": "IN_PROGRESS"}),
    )
    server.script("GET", f"{Q}/requests/other/status", Scripted(200, {"status": "IN_QUEUE"}))
    async with client(server) as c:
        await c.status(RID)  # slept 30 (fake) after the 429; the cool-down is still ahead
        await c.status("other")
    assert len(sleeps) == 2
    assert sleeps[0] == pytest.approx(30, abs=1)
    assert sleeps[1] == pytest.approx(30, abs=5)


# --- submit never pays twice ----------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
async def test_submit_retried_when_refused(server: ScriptedServer, status: int) -> None:
    """429 and 503 mean no job was created: submit is retried."""
    server.script("POST", Q, Scripted(status, {"error": "busy"}), Scripted(200, submitted(server)))
    with instant_waits():
        async with client(server) as c:
            handle = await c.submit("apple")
    assert handle.request_id == RID
    assert server.count("POST", Q) == 2


@pytest.mark.parametrize(
    "script",
    [
        Scripted(500, {"error": "oops"}),
        Scripted(502, "<html><title>502 Bad Gateway</title></html>"),
        Scripted(504, {}),
        Scripted(drop=True),
        Scripted(200, "{half a json"),
    ],
    ids=["500", "502", "504", "reset", "malformed"],
)
async def test_submit_ambiguous_failures_are_uncertain(
    server: ScriptedServer, script: Scripted
) -> None:
    """A reply lost or garbled after the POST was sent raises SubmissionUncertain, once."""
    server.script("POST", Q, script, Scripted(200, submitted(server)))
    with instant_waits():
        async with client(server) as c:
            with pytest.raises(SubmissionUncertainError, match="may exist"):
                await c.submit("apple")
    assert server.count("POST", Q) == 1


async def test_submit_read_timeout_is_uncertain(server: ScriptedServer) -> None:
    """A submit whose reply is slower than the read timeout is uncertain, never resent."""
    server.script("POST", Q, Scripted(200, submitted(server), delay=2.0))
    with instant_waits():
        async with client(server, timeouts=Timeouts(read=0.2)) as c:
            with pytest.raises(SubmissionUncertainError):
                await c.submit("apple")
    assert server.count("POST", Q) == 1


@pytest.mark.parametrize("status", [400, 401, 402, 403, 422])
async def test_submit_client_errors_not_retried(server: ScriptedServer, status: int) -> None:
    """Submit errors the server answered plainly are raised as they are, once."""
    server.script("POST", Q, Scripted(status, {"detail": "bad"}))
    async with client(server) as c:
        with pytest.raises(APIError) as caught:
            await c.submit("apple")
    assert not isinstance(caught.value, SubmissionUncertainError)
    assert server.count("POST", Q) == 1


async def test_submit_connection_refused_is_retried_then_connect_error() -> None:
    """A refused connection never reached a server: retried, then ConnectError."""
    async with scripted_server() as gone:
        url = gone.url
    with instant_waits():
        async with AsyncClient(KEY, base_url=url + "/model", retry=RetryPolicy(attempts=3)) as c:
            with pytest.raises(ConnectError):
                await c.submit("apple")


async def test_submit_sends_only_set_fields_with_bearer_key(server: ScriptedServer) -> None:
    """The POST body holds only the fields set; the key goes as a Bearer token."""
    server.script("POST", Q, Scripted(200, submitted(server)))
    async with client(server) as c:
        await c.submit("apple")
    (seen,) = server.seen
    assert seen.body == b'{"prompt":"apple"}'
    assert seen.headers["Authorization"] == f"Bearer {KEY}"


# --- result and cancel replies ---------------------------------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        Scripted(202, reply("result.not_ready")),
        Scripted(400, reply("result.still_in_progress_400")),
    ],
    ids=["202", "400-still-in-progress"],
)
async def test_result_not_ready_is_none(server: ScriptedServer, script: Scripted) -> None:
    """A result that is not ready yet returns None, never an error."""
    server.script("GET", RESULT, script)
    async with client(server) as c:
        assert await c.result(RID) is None


async def test_result_of_failed_job_raises(server: ScriptedServer) -> None:
    """A result body carrying a failure raises JobFailedError with its error_type."""
    server.script("GET", RESULT, Scripted(200, {"error": "no", "error_type": "CONTENT_BLOCKED"}))
    async with client(server) as c:
        with pytest.raises(JobFailedError) as caught:
            await c.result(RID)
    assert caught.value.error_type == "CONTENT_BLOCKED"


async def test_plain_400_on_result_is_an_error(server: ScriptedServer) -> None:
    """Only 'still in progress' makes a 400 a normal answer."""
    server.script("GET", RESULT, Scripted(400, {"detail": "bad id"}))
    async with client(server) as c:
        with pytest.raises(InvalidRequestError):
            await c.result(RID)


@pytest.mark.parametrize(
    ("script", "outcome"),
    [
        (Scripted(202, reply("cancel.requested_202")), CancelOutcome.REQUESTED),
        (Scripted(400, reply("cancel.already_completed_400")), CancelOutcome.ALREADY_COMPLETED),
    ],
)
async def test_cancel_outcomes(
    server: ScriptedServer, script: Scripted, outcome: CancelOutcome
) -> None:
    """Cancel answers 202 or ALREADY_COMPLETED as outcomes, not errors."""
    server.script("PUT", CANCEL, script)
    async with client(server) as c:
        assert await c.cancel(RID) is outcome


async def test_cancel_unknown_job(server: ScriptedServer) -> None:
    """Cancelling an unknown job raises NotFoundError."""
    server.script("PUT", CANCEL, Scripted(404, reply("cancel.not_found_404")))
    async with client(server) as c:
        with pytest.raises(NotFoundError):
            await c.cancel(RID)


# --- the key goes only where it belongs --------------------------------------------------------


async def test_foreign_status_url_refused(server: ScriptedServer) -> None:
    """Reply URLs on another origin are never used: the job is followed at the API itself."""
    async with scripted_server() as other:
        body = {**submitted(server), "status_url": other.url + "/steal"}
        server.script("POST", Q, Scripted(200, body))
        server.script("GET", STATUS, Scripted(200, {"status": "IN_QUEUE"}))
        async with client(server) as c:
            handle = await c.submit("apple")
            assert handle.status_url == server.url + STATUS
            await c.status(handle)
            foreign = attrs.evolve(handle, status_url=other.url + "/steal")
            with pytest.raises(UnsafeURLError, match="allowed_hosts"):
                await c.status(foreign)
    assert other.seen == []


async def test_unreadable_submit_reply_is_uncertain(server: ScriptedServer) -> None:
    """A 2xx submit reply without a request id means a job may exist: uncertain, not lost."""
    server.script("POST", Q, Scripted(200, {"status": "IN_QUEUE"}))
    async with client(server) as c:
        with pytest.raises(SubmissionUncertainError, match="unreadable"):
            await c.submit("apple")
    assert server.count("POST", Q) == 1


async def test_allowed_host_is_trusted(server: ScriptedServer) -> None:
    """A host the caller allowed may serve status URLs, and gets the key."""
    async with scripted_server() as other:
        host = other.url.removeprefix("http://")
        server.script(
            "POST", Q, Scripted(200, {**submitted(server), "status_url": other.url + "/s"})
        )
        other.script("GET", "/s", Scripted(200, {"status": "IN_QUEUE"}))
        async with client(server, allowed_hosts=[host]) as c:
            handle = await c.submit("apple")
            await c.status(handle)
        assert other.seen[0].headers["Authorization"] == f"Bearer {KEY}"


async def test_redirect_to_other_origin_drops_key(server: ScriptedServer) -> None:
    """A redirect from the API to another host is followed without Authorization."""
    async with scripted_server() as other:
        server.script("GET", STATUS, Scripted(302, b"", {"Location": other.url + "/elsewhere"}))
        other.script("GET", "/elsewhere", Scripted(200, {"status": "IN_QUEUE"}))
        async with client(server) as c:
            await c.status(RID)
        assert "Authorization" not in other.seen[0].headers


async def test_image_download_carries_no_key(server: ScriptedServer, tmp_path: Path) -> None:
    """Downloads from another origin (the CDN) never carry the key, also after a redirect."""
    async with scripted_server() as cdn:
        cdn.script("GET", "/a.png", Scripted(302, b"", {"Location": "/b.png"}))
        cdn.script("GET", "/b.png", Scripted(200, PNG, {"Content-Type": "image/png"}))
        async with client(server) as c:
            saved = await c.download(Image(url=cdn.url + "/a.png"), tmp_path / "a.png")
        assert saved.size == len(PNG)
        assert [s.path for s in cdn.seen] == ["/a.png", "/b.png"]
        assert all("Authorization" not in s.headers for s in cdn.seen)


# --- downloads -------------------------------------------------------------------------------


async def test_download_retries_truncated_body(server: ScriptedServer, tmp_path: Path) -> None:
    """A body shorter than promised is retried; only a complete file is published."""
    server.script("GET", "/img.png", Scripted(drop=True), Scripted(200, PNG))
    with instant_waits():
        async with client(server) as c:
            saved = await c.download(Image(url=server.url + "/img.png"), tmp_path / "x.png")
    assert (tmp_path / "x.png").read_bytes() == PNG
    assert saved.format == "png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


async def test_download_refuses_non_images(server: ScriptedServer, tmp_path: Path) -> None:
    """Bytes that are not an image are refused and leave no file behind."""
    server.script("GET", "/img.png", Scripted(200, b"<html>oops</html>"))
    with instant_waits():
        async with client(server, retry=RetryPolicy(attempts=2)) as c:
            with pytest.raises(TransportError, match="not an image"):
                await c.download(Image(url=server.url + "/img.png"), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


async def test_download_checks_declared_format(server: ScriptedServer, tmp_path: Path) -> None:
    """A PNG served where a JPEG was promised is refused."""
    server.script("GET", "/img.jpg", Scripted(200, PNG))
    with instant_waits():
        async with client(server, retry=RetryPolicy(attempts=1)) as c:
            with pytest.raises(TransportError, match="expected a jpeg"):
                await c.download(
                    Image(url=server.url + "/img.jpg", content_type="image/jpeg"),
                    tmp_path / "x.jpg",
                )


async def test_download_keeps_existing_file(server: ScriptedServer, tmp_path: Path) -> None:
    """An existing file is not overwritten unless asked."""
    target = tmp_path / "x.png"
    target.write_bytes(b"mine")
    server.script("GET", "/img.png", Scripted(200, PNG))
    async with client(server) as c:
        with pytest.raises(FileExistsError):
            await c.download(Image(url=server.url + "/img.png"), target)
        assert target.read_bytes() == b"mine"
        await c.download(Image(url=server.url + "/img.png"), target, overwrite=True)
    assert target.read_bytes() == PNG


async def test_inline_image_saved(server: ScriptedServer, tmp_path: Path) -> None:
    """Inline base64 images are written without any request."""
    image = Image(b64=base64.b64encode(PNG).decode(), content_type="image/png")
    async with client(server) as c:
        saved = await c.download(image, tmp_path / "sub" / "i.png")
    assert saved.path.read_bytes() == PNG
    assert server.seen == []


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (Scripted(202, reply("status.in_queue")), Queued),
        (Scripted(400, reply("result.still_in_progress_400")), Running),
        (Scripted(200, reply("result.outputs")), ImageResult),
        (Scripted(200, {"error": "no", "error_type": "CONTENT_BLOCKED"}), Failed),
    ],
)
async def test_result_or_status(server: ScriptedServer, script: Scripted, expected: type) -> None:
    """One request to the response URL gives the images when done, else the status."""
    server.script("GET", RESULT, script)
    async with client(server) as c:
        found = await c.result_or_status(RID)
    assert isinstance(found, expected)
    assert found.request_id
    assert server.count("GET", RESULT) == 1
