"""Serving image files: encoded once per kind, then streamed from memory in chunks.

The CDN's handler (in ``_server``) decides *which* image and *whether* to fault; this module
holds the encoded files and writes them out without copying them per request.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict

from aiohttp import web

from odiqueue._edits import sniff
from odiqueue.testing._config import EmulatorConfig
from odiqueue.testing._edits import draw_edit
from odiqueue.testing._images import Look, look_of, render
from odiqueue.testing._replies import ImageSpec, image_spec
from odiqueue.testing._state import JobRecord

__all__ = ["MAX_UPLOAD_BYTES", "ImageStore", "JobImages", "Uploads", "stream"]

_CHUNK = 256 * 1024
#: The largest file the upload endpoint takes.
MAX_UPLOAD_BYTES = 100 * 1024 * 1024

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


#: Edit outputs kept drawn (each is asked for about twice).
_DRAWN_KEPT = 32


class JobImages:
    """Each job's image file: drawn from its first input for an edit, else the gradient."""

    def __init__(self, store: ImageStore, config: EmulatorConfig) -> None:
        self._store = store
        self._config = config
        self._drawn: OrderedDict[str, bytes] = OrderedDict()

    async def get(self, job: JobRecord) -> bytes:
        """The file of a job's images. PillowMissingError when the format needs Pillow."""
        spec = image_spec(job.params)
        if job.thumbnail is None or self._config.same_images:
            return await self._store.get(spec, self.look(job))
        drawn = self._drawn.get(job.request_id)
        if drawn is None:
            drawn = await asyncio.to_thread(draw_edit, job.thumbnail, *spec[:3])
            self._drawn[job.request_id] = drawn
            while len(self._drawn) > _DRAWN_KEPT:
                self._drawn.popitem(last=False)
        return drawn

    def look(self, job: JobRecord) -> Look:
        """The job's own colours and label, so that a demo's images can be told apart."""
        return Look.PLAIN if self._config.same_images else look_of(job.params)


class Uploads:
    """Files sent to the emulator's upload endpoint, served back from the CDN origin."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[bytes, str]] = {}

    def keep(self, data: bytes) -> str | None:
        """Keep an uploaded image; its name, or None when it is no png/jpeg/webp or too big."""
        content_type = sniff(data[:16])
        if content_type is None or len(data) > MAX_UPLOAD_BYTES:
            return None
        name = f"{secrets.token_hex(8)}.{content_type.rpartition('/')[2]}"
        self._files[name] = (data, content_type)
        return name

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """``GET /uploads/{name}`` on the CDN origin."""
        found = self._files.get(request.match_info["name"])
        if found is None:
            return web.Response(status=404, text="Not Found")
        return await stream(request, *found)
