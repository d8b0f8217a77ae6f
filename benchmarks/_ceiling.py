"""The physical ceiling: how many small GETs a raw aiohttp client gets through per second
against a trivial aiohttp server in another process, on this machine."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp
from aiohttp import web

BODY = json.dumps({"status": "IN_PROGRESS", "request_id": "x" * 26}).encode()


async def serve(port: int) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="application/json")

    app = web.Application()
    app.router.add_get("/ping", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def measure(port: int, seconds: float = 3.0, concurrency: int = 64) -> float:
    url = f"http://127.0.0.1:{port}/ping"
    count = 0
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal count
            while time.monotonic() < deadline:
                async with session.get(url) as response:
                    await response.read()
                count += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.monotonic() - started)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        asyncio.run(serve(int(sys.argv[2])))
    else:
        print(json.dumps({"requests_per_second": asyncio.run(measure(int(sys.argv[2])))}))
