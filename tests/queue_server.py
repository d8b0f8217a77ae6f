"""A small queue API on 127.0.0.1 that breaks its promises on request: cut-off or noisy
images, a response URL that answers 404 for a while, 429s dated by a clock an hour ahead,
results listing more images than asked for, an image host that trickles.

Jobs complete at once; everything else is set by the attributes below, and every request
is counted.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import random
import struct
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Literal

from aiohttp import web

from odiqueue.testing._images import render
from tests.helpers import serving

QUEUE = "/model/v1/queue/gpt_image_1"
PNG = render("png", 64, 64, False, 40_000)


def _garbled(png: bytes) -> bytes:
    """``png`` with its compressed pixels replaced by garbage under a correct CRC: whole to
    a structural check, undecodable."""
    at = png.index(b"IDAT")
    (length,) = struct.unpack(">I", png[at - 4 : at])
    body = b"IDAT" + (bytes(range(256)) * (length // 256 + 1))[:length]
    return png[:at] + body + struct.pack(">I", zlib.crc32(body)) + png[at + 4 + length + 4 :]


GARBLED = _garbled(PNG)

#: How the image host answers one ask: the whole image, half of it with no Content-Length
#: (the body just ends), the PNG signature and noise (with a right Content-Length), or the
#: whole image one byte at a time, ``trickle`` seconds apart; ``garbled`` is whole in its
#: structure, but its pixels do not decode.
ImageMode = Literal["whole", "half", "noise", "garbled", "trickle"]


class QueueServer:
    """The server's behaviour, adjustable while it runs, and what it has seen."""

    def __init__(self) -> None:
        self.url = ""
        self.asks: Counter[str] = Counter()
        #: Image host behaviour by the path's ask number (1 for the first ask).
        self.image_mode: Callable[[int], ImageMode] = lambda ask: "whole"
        #: Results carry the image inline (base64 of these bytes) instead of a URL.
        self.inline: bytes | None = None
        #: Images each result lists.
        self.images_per_result = 1
        #: A job's response URL answers 404 for this many asks, then the result.
        self.response_404s = 0
        #: A job's status URL answers 404 for this many asks, then COMPLETED.
        self.status_404s = 0
        #: Submits refused with 429 (the first ones), with a Retry-After date one second
        #: ahead of the server's clock.
        self.refuse_submits = 0
        #: Seconds the server's clock (its Date headers) runs ahead of the real time.
        self.clock_ahead = 0.0
        #: Retry-After as delta-seconds instead of a date, when set.
        self.retry_after_seconds: float | None = None
        self.trickle = 1.0

    @property
    def submits(self) -> int:
        """Submits the server accepted (each would be a paid job)."""
        return self.asks["submit accepted"]

    def _date(self, ahead: float = 0.0) -> str:
        return email.utils.formatdate(time.time() + self.clock_ahead + ahead, usegmt=True)

    async def submit(self, request: web.Request) -> web.Response:
        self.asks["submit"] += 1
        if self.asks["submit"] <= self.refuse_submits:
            retry_after = (
                self._date(ahead=1.0)
                if self.retry_after_seconds is None
                else f"{self.retry_after_seconds:g}"
            )
            return web.json_response(
                {"detail": "slow down"},
                status=429,
                headers={"Retry-After": retry_after, "Date": self._date()},
            )
        self.asks["submit accepted"] += 1
        job = f"j{self.submits}"
        return web.json_response({"request_id": job}, headers={"Date": self._date()})

    async def status(self, request: web.Request) -> web.Response:
        job = request.match_info["job"]
        self.asks[f"status {job}"] += 1
        if self.asks[f"status {job}"] <= self.status_404s:
            return web.json_response({"detail": "Request not found"}, status=404)
        return web.json_response({"status": "COMPLETED", "request_id": job})

    async def response(self, request: web.Request) -> web.Response:
        job = request.match_info["job"]
        self.asks[f"response {job}"] += 1
        if self.asks[f"response {job}"] <= self.response_404s:
            return web.json_response({"detail": "Request not found"}, status=404)
        if self.inline is not None:
            encoded = base64.b64encode(self.inline).decode()
            images = [{"b64_json": encoded} for _ in range(self.images_per_result)]
            return web.json_response({"data": images})
        outputs = [
            {"type": "image", "url": f"{self.url}/img/{job}-{i}.png", "content_type": "image/png"}
            for i in range(self.images_per_result)
        ]
        return web.json_response({"outputs": outputs})

    async def image(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.asks[f"image {name}"] += 1
        self.asks["image"] += 1
        mode = self.image_mode(self.asks[f"image {name}"])
        if mode == "noise":
            noise = random.Random(name).randbytes(len(PNG) - 8)
            return web.Response(body=PNG[:8] + noise, content_type="image/png")
        if mode in ("whole", "garbled"):
            body = PNG if mode == "whole" else GARBLED
            return web.Response(body=body, content_type="image/png")
        # No Content-Length: the body ends where the server stops (chunked, ended cleanly).
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if mode == "half":
            await response.write(PNG[: len(PNG) // 2])
        else:
            for at in range(len(PNG)):
                await response.write(PNG[at : at + 1])
                await asyncio.sleep(self.trickle)
        await response.write_eof()
        return response


@asynccontextmanager
async def queue_server() -> AsyncIterator[QueueServer]:
    """Run a :class:`QueueServer` on a free loopback port."""
    server = QueueServer()
    app = web.Application()
    app.router.add_post(QUEUE, server.submit)
    app.router.add_get(QUEUE + "/requests/{job}/status", server.status)
    app.router.add_get(QUEUE + "/requests/{job}/response", server.response)
    app.router.add_get("/img/{name}", server.image)
    async with serving(app) as server.url:
        yield server


def base_url(server: QueueServer) -> str:
    """The client's base URL for ``server``."""
    return server.url + "/model"
