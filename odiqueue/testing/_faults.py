"""Choosing which request gets a fault, and doing it on the wire.

The choice is one draw per request from its own seeded RNG, so a run with the same seed and
the same request order injects the same faults. The wire side covers the two faults that are
not ordinary replies: a dropped connection and an image body cut short.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
from typing import TYPE_CHECKING

from aiohttp import web

from odiqueue.testing._state import KINDS

if TYPE_CHECKING:
    from odiqueue.testing._config import Faults

__all__ = ["REFUSALS", "FaultPicker", "drop_connection", "refusal", "send_truncated"]

#: Faults that replace the call entirely: the server does nothing and answers (or drops) at once.
REFUSALS: frozenset[str] = frozenset({"reset", "429", "503", "500", "502", "malformed"})

_PROXY_502 = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    "</center><hr><center>nginx</center></body></html>\n"
)
# Cut mid-value so no lenient parser can make sense of it.
_MALFORMED = '{"status": "IN_PROGRESS", "request_id": "mmsu_'


class FaultPicker:
    """Draws at most one fault per request from the configured rates."""

    def __init__(self, faults: Faults, seed: int) -> None:
        self._rng = random.Random(f"{seed}:faults")
        self._rates = {kind: faults.http_rates(kind) for kind in KINDS}

    def pick(self, kind: str) -> str | None:
        """The fault for this request of ``kind`` (``"429"``, ``"reset"``…), or None."""
        rates = self._rates[kind]
        if not rates:
            return None  # no draw, so enabling faults on one kind leaves others' draws alone
        draw = self._rng.random()
        for fault, rate in rates:
            if draw < rate:
                return fault
            draw -= rate
        return None


def refusal(fault: str, faults: Faults, gateway_id: str) -> web.Response:
    """The reply of a refusing fault other than ``reset``, tagged with the gateway's id."""
    headers = {"X-Request-Id": gateway_id}
    if fault == "429":
        if faults.retry_after is not None:
            headers["Retry-After"] = _seconds(faults.retry_after)
        body: object = {
            "error": {
                "code": "RATE_LIMIT_EXCEEDED",
                "message": "Rate limit exceeded, please try again later",
            },
            "request_id": gateway_id,
        }
        return _json(429, body, headers)
    if fault == "503":
        body = {
            "error": {"code": "SERVICE_UNAVAILABLE", "message": "Service temporarily unavailable"}
        }
        return _json(503, body, headers)
    if fault == "500":
        return _json(500, {"error": "Internal server error"}, headers)
    if fault == "502":
        return web.Response(status=502, text=_PROXY_502, content_type="text/html", headers=headers)
    if fault == "malformed":
        return web.Response(
            status=200, text=_MALFORMED, content_type="application/json", headers=headers
        )
    raise ValueError(f"not a refusal with a reply: {fault!r}")


def drop_connection(request: web.BaseRequest) -> web.Response:
    """Reset the connection under ``request`` and return a reply that will never be sent.

    A zero linger time makes the close a TCP reset, so the client sees a disconnect at once.
    aiohttp then fails to write the returned reply and takes that quietly as a client gone.
    """
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return web.Response(status=500)


async def send_truncated(
    request: web.BaseRequest, data: bytes, content_type: str
) -> web.StreamResponse:
    """Promise all of ``data`` in ``Content-Length``, send half of it, then close."""
    response = web.StreamResponse()
    response.content_type = content_type
    response.content_length = len(data)
    await response.prepare(request)
    await response.write(memoryview(data)[: len(data) // 2])
    transport = request.transport
    if transport is not None:
        # close(), not abort(): the half body already buffered still goes out before the FIN.
        transport.close()
    # Give the loop a turn to flush, so the client reads a short body rather than a reset.
    await asyncio.sleep(0)
    return response


def _json(status: int, body: object, headers: dict[str, str]) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
