"""A scripted HTTP server on 127.0.0.1: replies exactly what a test queues, records requests.

The emulator speaks the protocol faithfully; this server speaks whatever a test needs to pin
one rule (a given error body, a Retry-After date, a redirect to another origin).
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
from aiohttp import web

from tests.helpers import serving


@attrs.frozen
class Scripted:
    """One reply: status, body (JSON-able, bytes or str), headers, optional delay or drop."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    delay: float = 0.0
    drop: bool = False


@attrs.frozen
class Seen:
    """One request the server received."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


class ScriptedServer:
    """Queue replies per (method, path); the last reply for a path repeats forever."""

    def __init__(self) -> None:
        self.replies: dict[tuple[str, str], deque[Scripted]] = defaultdict(deque)
        self.seen: list[Seen] = []
        self.url = ""

    def script(self, method: str, path: str, *replies: Scripted) -> None:
        self.replies[(method, path)].extend(replies)

    def count(self, method: str, path: str) -> int:
        return sum(1 for s in self.seen if s.method == method and s.path == path)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path, dict(request.headers), body))
        queue = self.replies.get((request.method, request.path))
        if not queue:
            return web.json_response({"detail": "not scripted"}, status=404)
        reply = queue.popleft() if len(queue) > 1 else queue[0]
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        headers = dict(reply.headers)
        if isinstance(reply.body, bytes):
            data = reply.body
        elif isinstance(reply.body, str):
            data = reply.body.encode()
        else:
            data = json.dumps(reply.body).encode()
            headers.setdefault("Content-Type", "application/json")
        return web.Response(status=reply.status, body=data, headers=headers)


@asynccontextmanager
async def scripted_server() -> AsyncIterator[ScriptedServer]:
    """Run a :class:`ScriptedServer` on a free loopback port."""
    server = ScriptedServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server._handle)
    async with serving(app) as server.url:
        yield server
