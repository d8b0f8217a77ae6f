"""Edit inputs as the emulator sees them: references checked, the first one read, outputs drawn.

An input image reference is an http(s) URL, a ``data:`` URI or a plain base64 string (what
the vendor's CLI sends). Inline data is checked at submit (a 422 when it is no image, or when
the emulator is told to refuse inline data); a URL is fetched when the job is created, from
loopback hosts only, and a job whose input cannot be fetched fails with a clear error.

An edit's output is drawn from its first input image (scaled into a tinted frame), so a
before/after is visible; without Pillow it is the usual gradient.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import io
from collections.abc import Iterator
from typing import Any, Literal

import aiohttp
from yarl import URL

from odiqueue._account import is_loopback
from odiqueue._edits import sniff

__all__ = [
    "InputFetcher",
    "Thumbnail",
    "decode_inline",
    "draw_edit",
    "kind_of",
    "labelled_references",
    "reference_errors",
    "summarize",
    "thumbnail",
]

RefKind = Literal["url", "data_uri", "base64"]

#: ``(width, height, RGB bytes)`` of a first input image, kept small per job.
Thumbnail = tuple[int, int, bytes]

_THUMB_SIDE = 192
_FRAME = (244, 236, 222)
_TINT = (255, 170, 60)


def _references(body: dict[str, Any]) -> Iterator[tuple[list[Any], object]]:
    images = body.get("images")
    if isinstance(images, list):
        for index, value in enumerate(images):
            yield ["body", "images", index], value
    if "mask" in body:
        yield ["body", "mask"], body["mask"]


def kind_of(value: str) -> RefKind:
    """What form a reference takes."""
    head = value[:8].lower()
    if head.startswith(("http://", "https://")):
        return "url"
    return "data_uri" if head.startswith("data:") else "base64"


@functools.lru_cache(maxsize=8)
def decode_inline(value: str) -> bytes | None:
    """The bytes of a data: URI or a plain base64 string; None when it is neither (the
    last few are kept: a submit's checks, summary and drawing all read the same one)."""
    if value[:5].lower() == "data:":
        head, comma, value = value.partition(",")
        if not comma or not head.endswith(";base64"):
            return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def reference_errors(body: dict[str, Any], *, accept_inline: bool) -> list[dict[str, Any]]:
    """The 422 details for the body's image references (``images`` a list of strings)."""
    errors: list[dict[str, Any]] = []
    images = body.get("images")
    if "images" in body and not isinstance(images, list):
        errors.append(
            {"loc": ["body", "images"], "msg": "Input should be a valid list", "type": "list_type"}
        )
    for loc, value in _references(body):
        if not isinstance(value, str):
            errors.append(
                {"loc": loc, "msg": "Input should be a valid string", "type": "string_type"}
            )
            continue
        kind = kind_of(value)
        if kind == "url":
            continue
        if not accept_inline:
            errors.append(
                {
                    "loc": loc,
                    "msg": "Input should be a valid URL: inline image data is not accepted, "
                    "upload the file and send its URL",
                    "type": "url_parsing",
                }
            )
            continue
        data = decode_inline(value)
        if data is None:
            msg = "Value error, not a URL, a data: URI or base64 image data"
        elif sniff(data[:16]) is None:
            msg = "Value error, the image data is not a png, jpeg or webp image"
        else:
            continue
        errors.append({"loc": loc, "msg": msg, "type": "value_error"})
    return errors


def labelled_references(body: dict[str, Any]) -> list[tuple[str, str]]:
    """Each image reference of a (valid) body with its field: ``images[0]``..., ``mask``."""
    found = []
    for loc, value in _references(body):
        if isinstance(value, str):
            label = "mask" if loc[-1] == "mask" else f"images[{loc[-1]}]"
            found.append((label, value))
    return found


def summarize(body: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The body as a job keeps it (inline data replaced by a short description, so a job
    does not hold megabytes), and each reference's kind, in order."""
    kinds: list[str] = []

    def short(value: object) -> object:
        if not isinstance(value, str):
            return value
        kind = kind_of(value)
        kinds.append(kind)
        if kind == "url":
            return value
        data = decode_inline(value) or b""
        digest = hashlib.sha256(data).hexdigest()
        return f"<{kind} {sniff(data[:16])} {len(data)} bytes sha256:{digest}>"

    kept = dict(body)
    if isinstance(body.get("images"), list):
        kept["images"] = [short(value) for value in body["images"]]
    if "mask" in body:
        kept["mask"] = short(body["mask"])
    return kept, tuple(kinds)


def thumbnail(data: bytes) -> Thumbnail | None:
    """A small RGB copy of an input image; None without Pillow or for an unreadable one."""
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((_THUMB_SIDE, _THUMB_SIDE))
            rgb = image.convert("RGB")
    except (OSError, ValueError):
        return None
    return rgb.width, rgb.height, rgb.tobytes()


def draw_edit(thumb: Thumbnail, output_format: str, width: int, height: int) -> bytes:
    """The edit's output: its first input scaled into a tinted frame of the output's size."""
    from PIL import Image

    source = Image.frombytes("RGB", thumb[:2], thumb[2])
    border = max(8, min(width, height) // 16)
    scale = min((width - 2 * border) / source.width, (height - 2 * border) / source.height)
    fitted = source.resize(
        (max(1, int(source.width * scale)), max(1, int(source.height * scale))),
        Image.Resampling.BILINEAR,
    )
    tinted = Image.blend(fitted, Image.new("RGB", fitted.size, _TINT), 0.25)
    canvas = Image.new("RGB", (width, height), _FRAME)
    canvas.paste(tinted, ((width - fitted.width) // 2, (height - fitted.height) // 2))
    buffer = io.BytesIO()
    if output_format == "jpeg":
        canvas.save(buffer, "JPEG", quality=85)
    elif output_format == "webp":
        canvas.save(buffer, "WEBP", quality=80)
    else:
        canvas.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


class InputFetcher:
    """Reads a job's input images: inline ones decoded, URL ones fetched (loopback only)."""

    def __init__(self) -> None:
        self._fetcher: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        """Close the session used to fetch URL inputs, if one was opened."""
        if self._fetcher is not None:
            fetcher, self._fetcher = self._fetcher, None
            await fetcher.close()

    async def read(self, references: list[tuple[str, str]]) -> tuple[bytes | None, str | None]:
        """The first input image's bytes, once every URL reference was fetched and found to
        be an image (inline ones were checked with the body); else why one was not."""
        first: bytes | None = None
        for index, (label, reference) in enumerate(references):
            if kind_of(reference) != "url":
                data = decode_inline(reference) if index == 0 else None
            else:
                data, problem = await self._fetch(label, reference)
                if problem is not None:
                    return None, problem
            if index == 0 and label == "images[0]":
                first = data
        return first, None

    async def _fetch(self, label: str, reference: str) -> tuple[bytes | None, str | None]:
        """The bytes at an http(s) reference (loopback hosts only), or why there are none."""
        url = URL(reference)
        if not is_loopback(url.host or ""):
            return (
                None,
                f"{label}: {url.host} is not a loopback host (the emulator fetches no other)",
            )
        if self._fetcher is None:
            self._fetcher = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            async with self._fetcher.get(url) as response:
                if response.status != 200:
                    return None, f"{label}: fetching {reference} answered HTTP {response.status}"
                data = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, f"{label}: could not fetch {reference} ({type(exc).__name__})"
        if sniff(data[:16]) is None:
            return None, f"{label}: {reference} is not a png, jpeg or webp image"
        return data, None
