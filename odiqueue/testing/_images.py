"""Real, decodable images for the emulator's CDN origin, a different one for each job.

PNG is encoded here with zlib and struct, so the emulator works without Pillow; JPEG and WebP
need Pillow (the ``odiqueue[emulator]`` extra), imported only when first asked for. Every image
is a vertical gradient in two colours taken from a digest of the job's request (a
:class:`Look`), with the start of the prompt drawn near the bottom when Pillow is there, so
that a gallery of a demo batch can be told apart at a glance.

Drawing stays cheap at ten thousand jobs: an opaque PNG is a palette image whose pixels are
the same for every job of a size, so only the palette changes, and only the bottom band
holding the label is compressed per job (the rows above it are compressed once, and the
compressor's state is copied).

Padding (``image_bytes``) keeps each file decodable: PNG gets a private ancillary chunk that
decoders skip, JPEG gets comment (COM) segments, WebP gets an XMP packet filled with the
whitespace the XMP standard reserves for in-place edits.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import io
import json
import struct
import textwrap
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "CONTENT_TYPES",
    "EXTENSIONS",
    "Look",
    "PillowMissingError",
    "dimensions",
    "look_of",
    "render",
]

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
    """``(width, height)`` of a documented ``size`` value; ``auto`` draws 1024x1024.

    >>> dimensions("1536x1024")
    (1536, 1024)
    """
    return _SIZES[size]


RGB = tuple[int, int, int]

# Palette indices: the gradient's levels, then the caption bar's shade and its ink.
_LEVELS = 240
_SHADE = 254
_INK = 255
_LABEL_LINES = 2
_LABEL_CHARS = 80
_MIN_LABEL_WIDTH = 128  # narrower images (tests' tiny ones) get no label


@attrs.frozen
class Look:
    """What sets a job's picture apart: the gradient's two colours and a label."""

    top: RGB
    bottom: RGB
    label: str = ""

    #: The picture of no job in particular.
    PLAIN: ClassVar[Look]

    def palette(self) -> bytes:
        """256 RGB entries: the gradient's levels, unused black, the shade and the ink."""
        last = _LEVELS - 1
        entries = bytearray()
        pairs = list(zip(self.top, self.bottom, strict=True))
        for i in range(_LEVELS):
            entries += bytes(a + (b - a) * i // last for a, b in pairs)
        entries += bytes(3 * (_SHADE - _LEVELS))
        return bytes(entries) + bytes((28, 30, 36, 255, 255, 255))


Look.PLAIN = Look(_TOP, _BOTTOM)


def look_of(params: Mapping[str, Any]) -> Look:
    """The look of a job's images: colours from a digest of its whole request (a changed
    parameter changes them too) and the start of its prompt as the label."""
    text = json.dumps(params, sort_keys=True, default=str)
    digest = hashlib.blake2b(text.encode(), digest_size=4).digest()
    hue = int.from_bytes(digest[:2], "big") / 65536
    top = _rgb(hue, 0.65, 0.35 + 0.2 * digest[2] / 255)
    bottom = _rgb((hue + 0.12) % 1.0, 0.35, 0.92)
    label = " ".join(str(params.get("prompt", "")).split())[:_LABEL_CHARS]
    return Look(top, bottom, label)


def _rgb(hue: float, saturation: float, value: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


@functools.lru_cache(maxsize=64)
def render(
    output_format: str,
    width: int,
    height: int,
    alpha: bool,
    pad_to: int | None,
    look: Look = Look.PLAIN,
) -> bytes:
    """Encode the emulator's image; cached, so callers must not mutate the result.

    ``alpha`` draws a translucent image (png and webp only); ``pad_to`` grows the file to about
    that many bytes without breaking it (never shrinks it); ``look`` sets colours and label.

    >>> render("png", 16, 8, False, None)[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    if output_format == "png":
        data = _encode_png(width, height, alpha, look)
        return _pad_png(data, pad_to) if pad_to else data
    if output_format == "jpeg":
        data = _encode_with_pillow("JPEG", width, height, False, b"", look)
        return _pad_jpeg(data, pad_to) if pad_to else data
    if output_format == "webp":
        return _encode_webp(width, height, alpha, pad_to, look)
    raise ValueError(f"unknown output_format {output_format!r}")


def _font_px(width: int) -> int:
    return max(12, width // 20)


def _band(width: int, height: int) -> int:
    """How many rows at the bottom hold the label (drawn per job)."""
    if width < _MIN_LABEL_WIDTH:
        return 0
    # The lines at about 1.25 font sizes each, and a margin of about half a line around them.
    return min(height, _font_px(width) * (5 * _LABEL_LINES + 4) // 4)


@functools.lru_cache(maxsize=16)
def _levels(width: int, height: int) -> tuple[bytes, ...]:
    """Each row's palette indices: the same for every job of a size."""
    last = max(height - 1, 1)
    return tuple(bytes((y * (_LEVELS - 1) // last,)) * width for y in range(height))


@functools.lru_cache(maxsize=16)
def _head(width: int, height: int) -> tuple[bytes, Any]:
    """The rows above the label band, compressed once: the bytes so far, and the
    compressor in that state (copied per job, never used itself)."""
    compressor = zlib.compressobj(6)
    rows = _levels(width, height)[: height - _band(width, height)]
    # Filter type 0 (None) in front of each row.
    return b"".join(compressor.compress(b"\x00" + row) for row in rows), compressor


def _label_band(width: int, height: int, look: Look) -> bytes:
    """The label band's palette indices, with the label drawn when Pillow is there."""
    start = height - _band(width, height)
    plain = b"".join(_levels(width, height)[start:])
    image_module = _optional_pillow()
    if image_module is None or not look.label or start == height:
        return plain  # no label: the colours still tell jobs apart
    from PIL import ImageDraw

    # A caption bar: light text on a dark strip reads on any colour. A "P" image is drawn
    # without anti-aliasing, so every pixel stays a palette index.
    band = image_module.new("P", (width, height - start), _SHADE)
    size = _font_px(width)
    lines = textwrap.wrap(look.label, width=max(8, width * 2 // size - 4))[:_LABEL_LINES]
    try:
        ImageDraw.Draw(band).multiline_text(
            (size // 2, size // 3), "\n".join(lines), font=_font(size), fill=_INK
        )
    except (UnicodeError, OSError):
        return plain  # a bitmap font without the prompt's characters
    return band.tobytes()  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=4)
def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _indices(width: int, height: int, look: Look) -> bytes:
    """Every pixel's palette index, top to bottom."""
    start = height - _band(width, height)
    return b"".join(_levels(width, height)[:start]) + _label_band(width, height, look)


def _pixels(width: int, height: int, alpha: bool, look: Look) -> bytes:
    """RGB (or RGBA) pixels, for the encoders that need them."""
    image_module = _optional_pillow()
    if image_module is not None:
        return _picture(image_module, width, height, alpha, look).tobytes()  # type: ignore[no-any-return]
    # Without Pillow there is no label, so every row is one colour.
    palette = look.palette()
    opacity = _opacity()
    rows = []
    for level in _levels(width, height):
        i = level[0]
        pixel = palette[3 * i : 3 * i + 3] + (opacity[i : i + 1] if alpha else b"")
        rows.append(pixel * width)
    return b"".join(rows)


def _picture(image_module: ModuleType, width: int, height: int, alpha: bool, look: Look) -> Any:
    """The image as Pillow's RGB (or RGBA) image."""
    image = image_module.frombytes("P", (width, height), _indices(width, height, look))
    image.putpalette(look.palette())
    if alpha:
        image.info["transparency"] = _opacity()
        return image.convert("RGBA")
    return image.convert("RGB")


def _opacity() -> bytes:
    """Alpha per palette index: the gradient fades out, the label stays opaque."""
    last = _LEVELS - 1
    return bytes(255 - 191 * i // last for i in range(_LEVELS)) + b"\xff" * (256 - _LEVELS)


def _png_chunk(tag: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(tag))
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", crc)


def _rows_of(data: bytes, stride: int) -> bytes:
    """Raw PNG scanlines: filter type 0 (None) in front of each row."""
    return b"".join(b"\x00" + data[i : i + stride] for i in range(0, len(data), stride))


def _encode_png(width: int, height: int, alpha: bool, look: Look) -> bytes:
    if alpha:
        # RGBA, as the service sends a transparent image: drawn and compressed whole.
        header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
        raw = _rows_of(_pixels(width, height, True, look), 4 * width)
        chunks = [_png_chunk(b"IHDR", header), _png_chunk(b"IDAT", zlib.compress(raw, 6))]
    else:
        # Colour type 3 (palette): only the label band is compressed per job, by a copy of
        # the compressor that did the rows above it.
        header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
        head, compressor = _head(width, height)
        tail = compressor.copy()
        raw = _rows_of(_label_band(width, height, look), width)
        chunks = [
            _png_chunk(b"IHDR", header),
            _png_chunk(b"PLTE", look.palette()),
            _png_chunk(b"IDAT", head + tail.compress(raw) + tail.flush()),
        ]
    return b"".join((_PNG_SIGNATURE, *chunks, _png_chunk(b"IEND", b"")))


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


def _encode_webp(width: int, height: int, alpha: bool, pad_to: int | None, look: Look) -> bytes:
    if not pad_to:
        return _encode_with_pillow("WEBP", width, height, alpha, b"", look)
    # The XMP chunk grows the file by exactly its own growth, so one probe finds the room.
    probe = _encode_with_pillow("WEBP", width, height, alpha, _XMP_HEAD + _XMP_TAIL, look)
    room = pad_to - len(probe)
    if room <= 0:
        return probe
    xmp = _XMP_HEAD + b" " * room + _XMP_TAIL
    return _encode_with_pillow("WEBP", width, height, alpha, xmp, look)


def _encode_with_pillow(
    kind: str, width: int, height: int, alpha: bool, xmp: bytes, look: Look
) -> bytes:
    image = _picture(_pillow_image(), width, height, alpha, look)
    buffer = io.BytesIO()
    if kind == "JPEG":
        image.save(buffer, "JPEG", quality=85)
    elif xmp:
        image.save(buffer, "WEBP", quality=80, xmp=xmp)
    else:
        image.save(buffer, "WEBP", quality=80)
    return buffer.getvalue()


def _optional_pillow() -> ModuleType | None:
    try:
        return _pillow_image()
    except PillowMissingError:
        return None


def _pillow_image() -> ModuleType:
    try:
        from PIL import Image
    except ImportError as exc:
        raise PillowMissingError(
            "the odiqueue emulator needs Pillow to draw jpeg and webp images; "
            "install it with: pip install 'odiqueue[emulator]' (png works without it)"
        ) from exc
    return Image
