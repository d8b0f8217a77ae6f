"""A server that quotes the API key back, in every place a reply can hold text: the key (raw,
JSON-escaped, URL-encoded) shows up in no output, file, log or exception."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import anyio
import pytest
from aiohttp import web

from odiqueue import (
    AsyncClient,
    AuthenticationError,
    DecodeError,
    OdiqueueError,
    PollPolicy,
    RetryPolicy,
)
from tests.helpers import (
    IMAGE_SUFFIXES,
    PNG_1X1,
    WAIT_BOUND,
    collect,
    job_created,
    manifest_lines,
    odiqueue,
    serving,
)

pytestmark = pytest.mark.anyio

KEY = "sk-live/SECRET+quoted=0123456789/tail"
#: What must never be seen: the key in each form a server may spell it, and its middle.
FORMS = (KEY, KEY.replace("/", "\\/"), quote(KEY, safe=""), quote(KEY, safe="/"), "SECRET")
MODEL_PATH = "/v1/queue/gpt_image_1"


class QuotingServer:
    """Jobs named by their prompt: ``fails`` ends failed with the key in its error text,
    ``weird`` reports the key (``\\u``-escaped) as its status twice before it completes
    (``stuck`` for ever),
    ``fine`` completes. Every reply has ``X-Request-Id: Bearer <key>``; the status of job
    ``jbad`` is a 401 whose JSON body escapes ``/`` as ``\\/``."""

    def __init__(self) -> None:
        self.url = ""
        self.asks: Counter[str] = Counter()
        self.submits = 0

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._quote_in_header])
        app.router.add_post(MODEL_PATH, self._submit)
        app.router.add_get(MODEL_PATH + "/requests/{id}/{what}", self._job)
        app.router.add_put(MODEL_PATH + "/requests/{id}/cancel", self._cancel)
        return app

    @web.middleware
    async def _quote_in_header(
        self, request: web.Request, handler: web.Handler
    ) -> web.StreamResponse:
        response = await handler(request)
        response.headers["X-Request-Id"] = f"Bearer {KEY}"
        return response

    async def _submit(self, request: web.Request) -> web.Response:
        self.submits += 1
        prompt = (await request.json())["prompt"]
        job = f"{prompt}-{self.submits}"
        return job_created(f"{self.url}{MODEL_PATH}", job)

    async def _job(self, request: web.Request) -> web.Response:
        job, what = request.match_info["id"], request.match_info["what"]
        self.asks[job] += 1
        if job == "jbad":
            error = {"code": "UNAUTHORIZED", "message": f"invalid key {KEY}"}
            body = json.dumps({"error": error}).replace(KEY, KEY.replace("/", "\\/"))
            return web.Response(status=401, text=body, content_type="application/json")
        if job.startswith("fails"):
            failed = {"status": "COMPLETED", "request_id": job, "error_type": "REQUEST_INVALID"}
            body = json.dumps({**failed, "error": f"token {KEY} was refused"})
            return web.Response(text=body, content_type="application/json")
        if job.startswith("stuck") or (job.startswith("weird") and self.asks[job] <= 2):
            spelled = KEY.replace("/", "\\u002f")
            body = json.dumps({"status": KEY, "request_id": job}).replace(KEY, spelled)
            return web.Response(
                status=202 if what == "response" else 200,
                text=body,
                content_type="application/json",
            )
        if what == "status":
            return web.json_response({"status": "COMPLETED", "request_id": job})
        png = base64.b64encode(PNG_1X1).decode()
        return web.json_response({"data": [{"b64_json": png}]})

    async def _cancel(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ALREADY_COMPLETED"}, status=400)


@contextlib.asynccontextmanager
async def quoting_server() -> AsyncIterator[QuotingServer]:
    """A :class:`QuotingServer` on a free loopback port."""
    server = QuotingServer()
    async with serving(server.app()) as server.url:
        yield server


def leaks(text: str) -> list[str]:
    """The forms of the key found in ``text``."""
    return [form for form in FORMS if form in text]


def files_text(out: Path) -> str:
    """Everything the batch wrote into ``out`` that is text (the manifest, failed.csv, the
    review page and table)."""
    texts = (p for p in out.iterdir() if p.is_file() and p.suffix not in IMAGE_SUFFIXES)
    return "".join(p.read_text(errors="replace") for p in texts)


async def test_key_quoted_back_stays_out_of_the_command_line(tmp_path: Path) -> None:
    """With --json and without: stdout, stderr, manifest.jsonl and failed.csv hold no form of
    the key, for a job error, a header, an unknown status and a 401 body."""
    source = tmp_path / "p.txt"
    source.write_text("fails\nweird\nfine\n")
    async with quoting_server() as server:
        seen = []
        for flags in ([], ["--json"]):
            out = tmp_path / f"out{len(flags)}"
            code, stdout, stderr = await odiqueue(
                "generate", source, "--out", out, "--base-url", server.url, *flags, key=KEY
            )
            assert code == 1, stderr
            assert "was refused" in (out / "failed.csv").read_text()
            seen.extend((stdout, stderr, files_text(out)))
        code, stdout, stderr = await odiqueue("status", "jbad", "--base-url", server.url, key=KEY)
        assert code == 3
        assert "invalid key" in stderr
        seen.extend((stdout, stderr))
    assert server.asks["weird-2"] >= 3  # the unknown status was seen, then it completed
    assert not leaks("\n".join(seen))


async def test_key_quoted_back_stays_out_of_logs_and_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Logs at DEBUG, outcomes' errors (str and repr) and the manifest hold no form of the key,
    and the 401's message keeps the server's words with the key masked."""
    caplog.set_level(logging.DEBUG, logger="odiqueue")
    shown: list[str] = []
    async with (
        quoting_server() as server,
        AsyncClient(KEY, base_url=server.url, retry=RetryPolicy(attempts=2)) as client,
    ):
        outcomes = await collect(client, ["fails", "weird", "fine"], tmp_path)
        for outcome in outcomes:
            shown.append(repr(outcome))
            if outcome.error is not None:
                shown.extend((str(outcome.error), repr(outcome.error)))
                shown.append(str(outcome.error.provider_request_id))
        with pytest.raises(AuthenticationError) as caught:
            await client.status("jbad")
        error: OdiqueueError = caught.value
        shown.extend((str(error), repr(error), json.dumps(getattr(error, "body", None))))
    assert sorted(o.ok for o in outcomes) == [False, True, True]
    assert "invalid key …tail" in str(error)
    assert "unknown status" in caplog.text  # the DEBUG and WARNING lines were produced
    assert not leaks(caplog.text + "\n".join(shown) + files_text(tmp_path))


async def test_a_job_stuck_on_an_unknown_status_is_given_up_not_polled_forever(
    tmp_path: Path,
) -> None:
    """A status value no provider documents, for ever: after ``unknown_status_limit`` the
    item fails (the job kept in the manifest for a rerun, not cancelled); ``wait`` too."""
    poll = PollPolicy(initial=0.01, maximum=0.02, unknown_status_limit=0.3)
    async with (
        quoting_server() as server,
        AsyncClient(KEY, base_url=server.url, poll=poll) as client,
    ):
        with anyio.fail_after(WAIT_BOUND):
            [outcome] = await collect(client, ["stuck"], tmp_path)
            handle = await client.submit("stuck")
            with pytest.raises(DecodeError) as caught:
                await client.wait(handle)
    assert isinstance(outcome.error, DecodeError)
    assert "none odiqueue knows" in str(outcome.error)
    assert "none odiqueue knows" in str(caught.value)
    assert not leaks(str(outcome.error) + str(caught.value))
    assert manifest_lines(tmp_path)[-1]["event"] == "submitted"  # a rerun follows it by id
