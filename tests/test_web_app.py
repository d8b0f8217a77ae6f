"""One AsyncClient for a web application's lifetime (aiohttp.web here; a FastAPI or Starlette
lifespan is the same ``async with``), and a request that is given up cancels its job."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import anyio
import pytest
from aiohttp import web

from odiqueue import AsyncClient, ClientClosedError
from odiqueue.testing import Emulator
from tests.helpers import serving, until

pytestmark = pytest.mark.anyio

KEY = "sk-web-app-test-key-31337"
CLIENT = web.AppKey("odiqueue", AsyncClient)
SLOW = "a slow poster [duration:600]"


def make_app(base_url: str) -> web.Application:
    """The pattern the README shows: the client opens at startup, closes at cleanup."""
    app = web.Application()

    async def odiqueue_client(app: web.Application) -> AsyncIterator[None]:
        async with AsyncClient(KEY, base_url=base_url) as client:
            app[CLIENT] = client
            yield

    async def make_image(request: web.Request) -> web.Response:
        client = request.app[CLIENT]
        try:
            with anyio.fail_after(float(request.query.get("timeout", "60"))):
                result = await client.generate(request.query["prompt"])
        except TimeoutError:
            raise web.HTTPGatewayTimeout(text="the image took too long") from None
        return web.json_response({"request_id": result.request_id, "url": result.images[0].url})

    app.cleanup_ctx.append(odiqueue_client)
    app.router.add_post("/images", make_image)
    return app


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """``app`` on a free loopback port, cancelling a handler whose client goes away."""
    async with serving(app, handler_cancellation=True) as url:
        yield url


async def test_one_client_serves_every_request_and_closes_with_the_app() -> None:
    """Concurrent requests share the app's one client; it is closed when the app stops."""
    async with Emulator() as emu:
        app = make_app(emu.base_url)
        async with serve(app) as url, aiohttp.ClientSession() as browser:

            async def ask(prompt: str) -> str:
                async with browser.post(f"{url}/images", params={"prompt": prompt}) as reply:
                    assert reply.status == 200
                    body = await reply.json()
                    return str(body["request_id"])

            ids = await asyncio.gather(*(ask(f"poster {i}") for i in range(4)))
        assert sorted(ids) == sorted(emu.stats.jobs)
        with pytest.raises(ClientClosedError):
            await app[CLIENT].submit("after shutdown")


async def test_a_request_that_times_out_cancels_its_job() -> None:
    """A handler's own timeout answers 504 and cancels the job on the server."""
    async with Emulator() as emu, serve(make_app(emu.base_url)) as url:
        async with aiohttp.ClientSession() as browser:
            params = {"prompt": SLOW, "timeout": "0.3"}
            async with browser.post(f"{url}/images", params=params) as reply:
                assert reply.status == 504
        assert emu.stats.requests["cancel"] == 1
        (job,) = emu.stats.jobs.values()
        assert job.cancelled


async def test_a_browser_that_goes_away_cancels_its_job() -> None:
    """When the caller disconnects, the cancelled handler cancels its job on the server."""
    async with Emulator() as emu, serve(make_app(emu.base_url)) as url:
        async with aiohttp.ClientSession() as browser:
            with anyio.move_on_after(60) as scope:
                task = asyncio.ensure_future(browser.post(f"{url}/images", params={"prompt": SLOW}))
                await until(lambda: emu.stats.requests["status"] >= 1)
                task.cancel()  # the browser tab is closed: the connection drops
                with pytest.raises(asyncio.CancelledError):
                    await task
            assert not scope.cancelled_caught
        await until(lambda: emu.stats.requests["cancel"] == 1)
        (job,) = emu.stats.jobs.values()
        assert job.cancelled
