"""Real, decodable images for the emulator's CDN origin.

PNG is encoded here with zlib and struct, so the emulator works without Pillow; JPEG and WebP
need Pillow (the ``odiqueue[emulator]`` extra), imported only when first asked for. Every image
is a vertical gradient, the same for every job, and encoded once per format, size and padding:
a benchmark serving ten thousand images must not spend its time drawing them.

Padding (``image_bytes``) keeps each file decodable: PNG gets a private ancillary chunk that
decoders skip, JPEG gets comment (COM) segments, WebP gets an XMP packet filled with the
whitespace the XMP standard reserves for in-place edits.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["CONTENT_TYPES", "EXTENSIONS", "PillowMissingError", "dimensions", "render"]

#: MIME type per ``output_format``.
CONTENT_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}

#: File extension per ``output_format``.
EXTENSIONS: dict[str, str] = {"png": "png", "jpeg": "jpg", "webp": "webp"}

_SIZES: dict[str, tuple[int, int]] = {
    "1024x1024": (1024, 1024),
    "1024x1536": (1024, 1536),
    "1536x1024": (1536, 1024),
    "auto": (1024, 1024),
}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Lower-case first two letters: ancillary and private, so every decoder ignores it; upper-case
# third letter as the PNG spec reserves; lower-case last: safe to copy.
_PNG_PAD_CHUNK = b"odPd"
_PNG_CHUNK_OVERHEAD = 12
_JPEG_COM_MAX = 65533  # a segment length field counts itself and tops out at 65535
_JPEG_COM_OVERHEAD = 4
_XMP_HEAD = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>'
)
_XMP_TAIL = b'<?xpacket end="w"?>'

_TOP = (38, 84, 160)
_BOTTOM = (236, 178, 92)


class PillowMissingError(RuntimeError):
    """JPEG or WebP was asked for, but Pillow (the ``odiqueue[emulator]`` extra) is missing."""


def dimensions(size: str) -> tuple[int, int]:
    """``(width, height)`` of a documented ``size`` value or a custom ``WxH`` one; ``auto``
    draws 1024x1024.

    >>> dimensions("1536x1024")
    (1536, 1024)
    >>> dimensions("2048x1152")
    (2048, 1152)
    """
    fixed = _SIZES.get(size)
    if fixed is not None:
        return fixed
    width, _, height = size.partition("x")
    return int(width), int(height)


@functools.lru_cache(maxsize=64)
def render(output_format: str, width: int, height: int, alpha: bool, pad_to: int | None) -> bytes:
    """Encode the emulator's gradient image; cached, so callers must not mutate the result.

    ``alpha`` draws a translucent image (png and webp only); ``pad_to`` grows the file to about
    that many bytes without breaking it (never shrinks it).

    >>> render("png", 16, 8, False, None)[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    if output_format == "png":
        data = _encode_png(width, height, alpha)
        return _pad_png(data, pad_to) if pad_to else data
    if output_format == "jpeg":
        data = _encode_with_pillow("JPEG", width, height, False, b"")
        return _pad_jpeg(data, pad_to) if pad_to else data
    if output_format == "webp":
        return _encode_webp(width, height, alpha, pad_to)
    raise ValueError(f"unknown output_format {output_format!r}")


def _rows(width: int, height: int, alpha: bool) -> list[bytes]:
    # One colour per row keeps both drawing and compression cheap at 1536 px.
    rows = []
    last = max(height - 1, 1)
    for y in range(height):
        pixel = [a + (b - a) * y // last for a, b in zip(_TOP, _BOTTOM, strict=True)]
        if alpha:
            pixel.append(255 - 191 * y // last)
        rows.append(bytes(pixel) * width)
    return rows


def _png_chunk(tag: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(tag))
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", crc)


def _encode_png(width: int, height: int, alpha: bool) -> bytes:
    colour_type = 6 if alpha else 2  # RGBA or RGB, 8 bits per sample
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    # Filter type 0 (None) in front of each row.
    raw = b"".join(b"\x00" + row for row in _rows(width, height, alpha))
    return b"".join(
        (
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(raw, 6)),
            _png_chunk(b"IEND", b""),
        )
    )


def _pad_png(data: bytes, pad_to: int) -> bytes:
    room = pad_to - len(data) - _PNG_CHUNK_OVERHEAD
    if room <= 0:
        return data
    end = len(data) - _PNG_CHUNK_OVERHEAD  # IEND is always the last 12 bytes here
    return data[:end] + _png_chunk(_PNG_PAD_CHUNK, bytes(room)) + data[end:]


def _pad_jpeg(data: bytes, pad_to: int) -> bytes:
    room = pad_to - len(data)
    segments = []
    while room > _JPEG_COM_OVERHEAD:
        size = min(_JPEG_COM_MAX, room - _JPEG_COM_OVERHEAD)
        segments.append(b"\xff\xfe" + struct.pack(">H", size + 2) + b" " * size)
        room -= size + _JPEG_COM_OVERHEAD
    # Right after SOI, where a comment is always allowed.
    return data[:2] + b"".join(segments) + data[2:]


def _encode_webp(width: int, height: int, alpha: bool, pad_to: int | None) -> bytes:
    if not pad_to:
        return _encode_with_pillow("WEBP", width, height, alpha, b"")
    # The XMP chunk grows the file by exactly its own growth, so one probe finds the room.
    probe = _encode_with_pillow("WEBP", width, height, alpha, _XMP_HEAD + _XMP_TAIL)
    room = pad_to - len(probe)
    if room <= 0:
        return probe
    return _encode_with_pillow("WEBP", width, height, alpha, _XMP_HEAD + b" " * room + _XMP_TAIL)


def _encode_with_pillow(kind: str, width: int, height: int, alpha: bool, xmp: bytes) -> bytes:
    image_module = _pillow_image()
    mode = "RGBA" if alpha else "RGB"
    image = image_module.frombytes(mode, (width, height), b"".join(_rows(width, height, alpha)))
    buffer = io.BytesIO()
    if kind == "JPEG":
        image.save(buffer, "JPEG", quality=85)
    elif xmp:
        image.save(buffer, "WEBP", quality=80, xmp=xmp)
    else:
        image.save(buffer, "WEBP", quality=80)
    return buffer.getvalue()


def _pillow_image() -> ModuleType:
    try:
        from PIL import Image
    except ImportError as exc:
        raise PillowMissingError(
            "the odiqueue emulator needs Pillow to draw jpeg and webp images; "
            "install it with: pip install 'odiqueue[emulator]' (png works without it)"
        ) from exc
    return Image
