"""Serving image files: encoded once per kind, then streamed from memory in chunks.

The CDN's handler (in ``_server``) decides *which* image and *whether* to fault; this module
holds the encoded files and writes them out without copying them per request.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from aiohttp import web

from odiqueue.testing._images import Look, render
from odiqueue.testing._replies import ImageSpec

__all__ = ["ImageStore", "stream"]

_CHUNK = 256 * 1024

#: ``(output_format, width, height, alpha, pad_to, look)``: everything that changes the file.
ImageKey = tuple[str, int, int, bool, int | None, Look]

#: Files kept: each job's own image is asked for about twice (result, then download).
_KEPT = 256


class ImageStore:
    """The encoded images of one emulator, drawn on first use off the event loop."""

    def __init__(self, image_bytes: int | None) -> None:
        self._pad_to = image_bytes
        self._files: OrderedDict[ImageKey, bytes] = OrderedDict()
        self._drawing: dict[ImageKey, asyncio.Future[bytes]] = {}

    async def get(self, spec: ImageSpec, look: Look = Look.PLAIN) -> bytes:
        """The file for an image spec and look; PillowMissingError for jpeg or webp without
        Pillow."""
        key: ImageKey = (*spec, self._pad_to, look)
        data = self._files.get(key)
        if data is not None:
            self._files.move_to_end(key)
            return data
        drawing = self._drawing.get(key)
        if drawing is None:
            # The first WebP of a size takes a tenth of a second: draw it in a thread, once,
            # however many requests ask for it meanwhile.
            drawing = asyncio.ensure_future(asyncio.to_thread(render, *key))
            self._drawing[key] = drawing
            drawing.add_done_callback(lambda _: self._drawing.pop(key, None))
        # shield: a client giving up must not cancel the drawing other requests wait on.
        data = await asyncio.shield(drawing)
        self._files[key] = data
        if len(self._files) > _KEPT:
            self._files.popitem(last=False)
        return data


async def stream(request: web.BaseRequest, data: bytes, content_type: str) -> web.StreamResponse:
    """Send ``data`` with its Content-Type and Content-Length, in chunks."""
    response = web.StreamResponse()
    response.content_type = content_type
    response.content_length = len(data)
    await response.prepare(request)
    if request.method != "HEAD":  # aiohttp would send a HEAD reply's body as written
        view = memoryview(data)  # slices share the cached bytes instead of copying them
        for offset in range(0, len(data), _CHUNK):
            await response.write(view[offset : offset + _CHUNK])
    await response.write_eof()
    return response
