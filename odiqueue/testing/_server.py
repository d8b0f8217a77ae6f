"""The :class:`Emulator`: two aiohttp servers on loopback, the queue API and an image CDN.

Every API request goes through the same steps, in this order, so tests can reason about them:
count it, check the key (401 before any fault), draw a fault, then do the call. Refusing faults
(reset, 429, 503, 500, 502, malformed) replace the call; ``slow`` does the call, then waits.
The CDN origin never checks keys, but records the headers of every request it gets.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import web

from odiqueue.testing._cdn import ImageStore, stream
from odiqueue.testing._config import EmulatorConfig, Faults
from odiqueue.testing._faults import REFUSALS, FaultPicker, drop_connection, refusal, send_truncated
from odiqueue.testing._images import (
    CONTENT_TYPES,
    EXTENSIONS,
    Look,
    PillowMissingError,
    look_of,
)
from odiqueue.testing._params import json_error, validate
from odiqueue.testing._replies import ImageSpec, Replies, image_spec, new_request_id
from odiqueue.testing._scheduler import JobTable
from odiqueue.testing._state import JobRecord, Stats

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Emulator"]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_Impl = Callable[[web.Request, str], Awaitable[web.StreamResponse]]

#: Listen backlog: tests and benchmarks open hundreds of connections at once.
BACKLOG = 2048
#: Seconds a closing emulator lets in-flight replies finish before cancelling them.
SHUTDOWN_GRACE = 0.25
_CREDITS_402 = {
    "status": {"code": 402, "message": "Insufficient credits", "error_code": 40201},
    "data": None,
}


class Emulator:
    """A local, real-HTTP stand-in for the gpt_image_1 queue API and its image CDN.

    Use it as an async context manager (or call :meth:`start` and :meth:`aclose`). Point your
    client at :attr:`base_url`; image URLs in results point at :attr:`cdn_url`, a second
    origin, so you can check no API key leaks there. :attr:`stats` shows what it has seen.

    Example::

        async with Emulator(EmulatorConfig(workers=4, job_seconds=20, time_scale=0.01)) as emu:
            submit_url = f"{emu.base_url}/v1/queue/gpt_image_1"
            ...  # run your code against submit_url with any non-empty key
            assert emu.stats.jobs_created == 1

    For another process (a benchmark, a manual try), run ``python -m odiqueue.testing``; its
    counters are at ``GET /_emulator/stats`` and ``POST /_emulator/reset`` clears them.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self._config = config if config is not None else EmulatorConfig()
        self._gateway_ids = itertools.count(1)
        self._store = ImageStore(self._config.image_bytes)
        self._api_runner: web.AppRunner | None = None
        self._cdn_runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._cdn_url: str | None = None
        self._replies: Replies | None = None
        self._stats = Stats()
        self._table = JobTable(self._config, self._stats)
        self._faults = FaultPicker(self._config.faults, self._config.seed)

    @property
    def config(self) -> EmulatorConfig:
        """The configuration this emulator runs with."""
        return self._config

    @property
    def base_url(self) -> str:
        """The API base, e.g. ``http://127.0.0.1:PORT/model``.

        Submit to ``f"{emu.base_url}/v1/queue/gpt_image_1"``.
        """
        if self._base_url is None:
            raise RuntimeError("the emulator has not started: use 'async with' or await start()")
        return self._base_url

    @property
    def cdn_url(self) -> str:
        """The image origin, e.g. ``http://127.0.0.1:OTHERPORT``, where result image URLs point."""
        if self._cdn_url is None:
            raise RuntimeError("the emulator has not started: use 'async with' or await start()")
        return self._cdn_url

    @property
    def stats(self) -> Stats:
        """Live counters and job records, brought up to date as of this moment."""
        self._table.advance(time.monotonic())
        return self._stats

    def reset(self) -> None:
        """Forget every job and counter and restart the RNGs, as ``POST /_emulator/reset`` does."""
        self._stats = Stats()
        self._table = JobTable(self._config, self._stats)
        self._faults = FaultPicker(self._config.faults, self._config.seed)

    def set_faults(self, faults: Faults) -> None:
        """Change the HTTP faults from now on (jobs keep running), e.g. to end an outage.

        Job failure rates are drawn when a job is submitted, so only new jobs see new ones.
        """
        self._config = attrs.evolve(self._config, faults=faults)
        self._faults = FaultPicker(faults, self._config.seed)
        self._table.set_failure_rates(faults.job_failure_rates)

    async def start(self) -> None:
        """Start both servers; :attr:`base_url` and :attr:`cdn_url` are valid afterwards."""
        if self._api_runner is not None:
            raise RuntimeError("the emulator is already running")
        config = self._config
        try:
            self._api_runner, api_port = await _serve(self._api_app(), config.host, config.port)
            self._cdn_runner, cdn_port = await _serve(self._cdn_app(), config.host, config.cdn_port)
        except BaseException:
            await self.aclose()
            raise
        host = f"[{config.host}]" if ":" in config.host else config.host
        self._base_url = f"http://{host}:{api_port}{config.prefix}"
        self._cdn_url = f"http://{host}:{cdn_port}"
        self._replies = Replies(config, self._base_url, self._cdn_url)

    async def aclose(self) -> None:
        """Stop both servers (in-flight replies get :data:`SHUTDOWN_GRACE` seconds); idempotent."""
        runners = [r for r in (self._api_runner, self._cdn_runner) if r is not None]
        # The URLs stay readable after closing, for assertions written after the block.
        self._api_runner = self._cdn_runner = None
        for runner in runners:
            await runner.cleanup()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- wiring ---------------------------------------------------------------------------

    def _api_app(self) -> web.Application:
        app = web.Application()
        queue = f"{self._config.prefix}/v1/queue/{{model}}"
        job = f"{queue}/requests/{{request_id}}"
        app.router.add_post(queue, self._api("submit", self._submit))
        app.router.add_get(f"{job}/status", self._api("status", self._status))
        app.router.add_get(f"{job}/response", self._api("result", self._result))
        app.router.add_put(f"{job}/cancel", self._api("cancel", self._cancel))
        app.router.add_get("/_emulator/stats", self._control_stats)
        app.router.add_post("/_emulator/reset", self._control_reset)
        app.on_response_prepare.append(self._tag_reply)
        return app

    def _cdn_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/images/{request_id}/{name}", self._image)
        return app

    def _api(self, kind: str, impl: _Impl) -> _Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            stats = self._stats  # a reset mid-request must not unbalance the new counters
            stats.request_started(kind)
            try:
                gateway_id = self._next_gateway_id()
                denied = self._check_key(request, gateway_id)
                if denied is not None:
                    return denied
                self._count_job_request(kind, request)
                fault = self._faults.pick(kind)
                if fault is not None:
                    stats.faults_injected[f"{kind}:{fault}"] += 1
                    if fault == "reset":
                        return drop_connection(request)
                    if fault in REFUSALS:
                        return refusal(fault, self._config.faults, gateway_id)
                response = await impl(request, gateway_id)
                if fault == "slow":
                    await asyncio.sleep(self._config.faults.slow_seconds)
                return response
            finally:
                stats.request_finished(kind)

        return handle

    def _next_gateway_id(self) -> str:
        return f"gw_{next(self._gateway_ids):04x}"

    async def _tag_reply(self, request: web.Request, response: web.StreamResponse) -> None:
        # The call handlers tag their own replies (the id also goes in some bodies); this
        # covers the rest (404 for an unknown path, the control endpoint), as a gateway would.
        if "X-Request-Id" not in response.headers:
            response.headers["X-Request-Id"] = self._next_gateway_id()

    def _check_key(self, request: web.Request, gateway_id: str) -> web.Response | None:
        scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
        key = key.strip()
        if scheme.lower() in ("bearer", "key") and key:
            expected = self._config.api_key
            if expected is None or key == expected:
                return None
            message = "Invalid API key"
        else:
            message = "Authorization Bearer or Key token is required"
        body = {"error": {"code": "UNAUTHORIZED", "message": message}, "request_id": gateway_id}
        return _json(401, body, gateway_id)

    def _count_job_request(self, kind: str, request: web.Request) -> None:
        if kind == "submit":
            return
        job = self._table.get(request.match_info["request_id"])
        if job is None:
            return
        if kind == "status":
            job.status_polls += 1
        elif kind == "result":
            job.result_requests += 1
        else:
            job.cancel_requests += 1

    # -- API calls ------------------------------------------------------------------------

    async def _submit(self, request: web.Request, gateway_id: str) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except ValueError as exc:  # also catches bad UTF-8
            return _json(422, {"detail": json_error(str(exc))}, gateway_id)
        errors = validate(body)
        if errors:
            return _json(422, {"detail": errors}, gateway_id)
        if not self._table.charge(body.get("n", 1)):
            return _json(402, _CREDITS_402, gateway_id)
        request_id = new_request_id()
        while self._table.get(request_id) is not None:
            request_id = new_request_id()
        job = self._table.submit(request_id, request.match_info["model"], body, time.monotonic())
        return _json(200, self._bodies().submit(job), gateway_id)

    def _job_now(
        self, request: web.Request, gateway_id: str
    ) -> tuple[JobRecord, float] | web.StreamResponse:
        """The job a status or result request names, with the queue brought up to now; or
        the 404 reply when there is no such job."""
        request_id = request.match_info["request_id"]
        job = self._table.get(request_id)
        if job is None:
            return _json(404, {"detail": f"Request not found: {request_id}"}, gateway_id)
        now = time.monotonic()
        self._table.advance(now)
        return job, now

    async def _status(self, request: web.Request, gateway_id: str) -> web.StreamResponse:
        found = self._job_now(request, gateway_id)
        if isinstance(found, web.StreamResponse):
            return found
        job, now = found
        status, body = self._bodies().status(job, self._table, now)
        if job.completed_at is not None and job.first_seen_completed_at is None:
            job.first_seen_completed_at = now
        return _json(status, body, gateway_id)

    async def _result(self, request: web.Request, gateway_id: str) -> web.StreamResponse:
        found = self._job_now(request, gateway_id)
        if isinstance(found, web.StreamResponse):
            return found
        job, now = found
        replies = self._bodies()
        if job.completed_at is None:
            if self._config.not_ready_style == "400":
                return _json(400, {"detail": "Request is still in progress"}, gateway_id)
            return _json(202, replies.status(job, self._table, now)[1], gateway_id)
        if job.first_seen_completed_at is None:
            job.first_seen_completed_at = now
        if job.error_type is not None:
            return _json(200, replies.failed_result(job), gateway_id)
        try:
            image = await self._store.get(image_spec(job.params), self._look(job))
        except PillowMissingError as exc:
            return _json(500, {"error": str(exc)}, gateway_id)
        return _json(200, replies.result(job, image), gateway_id)

    async def _cancel(self, request: web.Request, gateway_id: str) -> web.StreamResponse:
        job = self._table.get(request.match_info["request_id"])
        if job is None:
            return _json(404, {"status": "NOT_FOUND"}, gateway_id)
        if self._table.cancel(job, time.monotonic()):
            return _json(202, {"status": "CANCELLATION_REQUESTED"}, gateway_id)
        return _json(400, {"status": "ALREADY_COMPLETED"}, gateway_id)

    # -- CDN and control ------------------------------------------------------------------

    async def _image(self, request: web.Request) -> web.StreamResponse:
        stats = self._stats
        stats.request_started("image")
        try:
            stats.image_request_headers.append({str(k): v for k, v in request.headers.items()})
            fault = self._faults.pick("image")
            if fault is not None:
                stats.faults_injected[f"image:{fault}"] += 1
                if fault == "reset":
                    return drop_connection(request)
                if fault in REFUSALS:
                    return refusal(fault, self._config.faults, f"cdn_{stats.requests['image']:04x}")
            found = self._image_for(request)
            if found is None:
                return web.Response(status=404, text="Not Found")
            spec, look = found
            try:
                data = await self._store.get(spec, look)
            except PillowMissingError as exc:
                return web.Response(status=500, text=str(exc))
            content_type = CONTENT_TYPES[spec[0]]
            if fault == "truncated" and request.method != "HEAD":
                return await send_truncated(request, data, content_type)
            if fault == "slow":
                await asyncio.sleep(self._config.faults.slow_seconds)
            return await stream(request, data, content_type)
        finally:
            stats.request_finished("image")

    def _image_for(self, request: web.Request) -> tuple[ImageSpec, Look] | None:
        job = self._table.get(request.match_info["request_id"])
        self._table.advance(time.monotonic())
        if job is None or not job.succeeded:
            return None
        spec = image_spec(job.params)
        index, dot, extension = request.match_info["name"].partition(".")
        if not (dot and index.isdigit() and extension == EXTENSIONS[spec[0]]):
            return None
        return (spec, self._look(job)) if int(index) < job.params.get("n", 1) else None

    def _look(self, job: JobRecord) -> Look:
        """The job's own colours and label, so that a demo's images can be told apart."""
        return Look.PLAIN if self._config.same_images else look_of(job.params)

    async def _control_stats(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.stats.to_json())

    async def _control_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return web.json_response({"reset": True})

    def _bodies(self) -> Replies:
        if self._replies is None:  # only reachable if a handler outlives aclose()
            raise RuntimeError("the emulator is not running")
        return self._replies


async def _serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    # No access log: at thousands of requests a second it would cost more than the replies.
    # handler_cancellation: a client that gives up on a slow reply ends that handler too, so
    # the concurrency counters show what clients are actually waiting on.
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE, handler_cancellation=True
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=BACKLOG)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])


def _json(status: int, body: Any, gateway_id: str) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        headers={"X-Request-Id": gateway_id},
    )
