"""The walk of each image format: PNG, JPEG, WebP and GIF, fed in pieces.

- PNG: the signature, then every chunk through ``IEND``, each chunk's CRC checked (``IHDR``
  first, at least one ``IDAT``).
- JPEG: ``SOI``, then a walk of the marker segments by their lengths, the entropy-coded data
  after each ``SOS`` scanned for the next marker, through ``EOI`` (a frame header before the
  first scan, at least one scan).
- WebP: the ``RIFF`` length matches the bytes exactly, and the chunks inside it fill it.
- GIF: the blocks and sub-blocks through the trailer (``;``), with at least one image.

Bytes after a PNG's ``IEND``, a JPEG's ``EOI`` or a GIF's trailer are allowed: decoders
ignore them, and some writers put data there (a JPEG's second picture in an MPO file).
Nothing here decodes pixels: a CRC catches damage inside a PNG, a JPEG's compressed data is
only walked. A full decode
(:func:`decode`, with Pillow) is the stronger, slower check.
"""

from __future__ import annotations

import re
import struct
import zlib
from typing import Final

__all__ = ["HEAD_BYTES", "WALKERS", "ContentError", "Walker", "sniff_format"]


class ContentError(ValueError):
    """Downloaded bytes that are not the image they claim to be (empty, cut off, wrong type)."""


_MAGIC: Final = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)
#: Bytes needed to tell the formats apart.
HEAD_BYTES: Final = 12


def sniff_format(head: bytes) -> str | None:
    """The image format the first bytes announce: png, jpeg, webp, gif, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


class Walker:
    """A format's walk: small fixed-size reads are gathered in ``_small``; long stretches
    (chunk data, segments) are consumed in place without copying."""

    name = ""

    def __init__(self) -> None:
        self._small = bytearray()
        self._need = 0
        self.done = False
        #: Bytes seen after the end marker.
        self.trailing = 0

    def trailing_problem(self) -> str | None:
        """Why bytes after the image's end make it damaged (None: decoders ignore them)."""
        return None

    def feed(self, data: bytes) -> None:
        raise NotImplementedError

    def take_small(self, data: bytes, pos: int) -> tuple[bytes | None, int]:
        """Gather up to ``_need`` bytes; the read once complete, else None."""
        take = min(self._need - len(self._small), len(data) - pos)
        self._small += data[pos : pos + take]
        pos += take
        if len(self._small) < self._need:
            return None, pos
        read = bytes(self._small)
        self._small.clear()
        return read, pos

    def incomplete(self) -> str:
        raise NotImplementedError


class _Png(Walker):
    name = "png"
    # Stages: a fixed read (signature, chunk header, CRC), or a chunk's data.
    _SIGNATURE, _HEADER, _DATA, _CRC = range(4)

    def __init__(self) -> None:
        super().__init__()
        self._stage = self._SIGNATURE
        self._need = 8
        self._left = 0
        self._crc = 0
        self._type = b""
        self._chunks = 0
        self._idat = False

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        view = memoryview(data)
        while pos < end:
            if self.done:
                self.trailing += end - pos
                return
            if self._stage == self._DATA:
                take = min(self._left, end - pos)
                self._crc = zlib.crc32(view[pos : pos + take], self._crc)
                pos += take
                self._left -= take
                if not self._left:
                    self._stage, self._need = self._CRC, 4
                continue
            read, pos = self.take_small(data, pos)
            if read is not None:
                self._step(read)

    def _step(self, read: bytes) -> None:
        if self._stage == self._SIGNATURE:
            self._stage, self._need = self._HEADER, 8
        elif self._stage == self._HEADER:
            length, kind = struct.unpack(">I4s", read)
            if length > 0x7FFFFFFF or not kind.isalpha():
                raise ContentError(f"damaged png: chunk {self._chunks + 1} has a bad header")
            if self._chunks == 0 and (kind != b"IHDR" or length != 13):
                raise ContentError("damaged png: the first chunk is not IHDR")
            self._chunks += 1
            self._type, self._left = kind, length
            self._crc = zlib.crc32(kind)
            self._stage, self._need = (self._DATA, 0) if length else (self._CRC, 4)
        else:  # the CRC
            if struct.unpack(">I", read)[0] != self._crc:
                name = self._type.decode("ascii")
                raise ContentError(f"damaged png: chunk {self._chunks} ({name}) fails its CRC")
            self._idat = self._idat or self._type == b"IDAT"
            if self._type == b"IEND":
                if not self._idat:
                    raise ContentError("damaged png: no image data (IDAT) before IEND")
                self.done = True
            self._stage, self._need = self._HEADER, 8

    def incomplete(self) -> str:
        return "the png is cut off before its IEND chunk"


# In a JPEG's entropy-coded data a 0xFF byte is followed by 0x00 (a stuffed byte), 0xD0-0xD7
# (a restart marker, part of the scan) or more 0xFF (fill): anything else is a marker.
_SCAN_MARKER: Final = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# Frame headers: SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC).
_SOF: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE: Final = frozenset(range(0xD0, 0xD8)) | {0x01}


class _Jpeg(Walker):
    name = "jpeg"
    _SOI, _MARK, _CODE, _LENGTH, _SKIP, _SCAN = range(6)

    def __init__(self) -> None:
        super().__init__()
        self._stage = self._SOI
        self._need = 2
        self._left = 0
        self._code = 0
        self._frame = False
        self._scans = 0
        # The last byte of the previous piece was a 0xFF of entropy-coded data.
        self._ff = False

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self.done:
                self.trailing += end - pos
                return
            stage = self._stage
            if stage == self._SKIP:
                take = min(self._left, end - pos)
                pos += take
                self._left -= take
                if not self._left:
                    self._stage = self._SCAN if self._code == 0xDA else self._MARK
                    self._need = 1
                continue
            if stage == self._SCAN:
                pos = self._scan(data, pos)
                continue
            read, pos = self.take_small(data, pos)
            if read is not None:
                self._step(read)

    def _scan(self, data: bytes, pos: int) -> int:
        """Skip entropy-coded data up to the next marker; where to go on from."""
        if self._ff:
            self._ff = False
            code = data[pos]
            if code == 0xFF:
                return pos  # fill: the 0xFF here may start the marker
            if code == 0 or 0xD0 <= code <= 0xD7:
                return pos + 1
            self._marker(code)
            return pos + 1
        found = _SCAN_MARKER.search(data, pos)
        if found is None:
            self._ff = data.endswith(b"\xff")
            return len(data)
        self._marker(data[found.start() + 1])
        return found.end()

    def _step(self, read: bytes) -> None:
        stage = self._stage
        if stage == self._SOI:
            self._stage, self._need = self._MARK, 1
        elif stage == self._MARK:
            if read[0] != 0xFF:
                raise ContentError(f"damaged jpeg: expected a marker, found byte {read[0]:#04x}")
            self._stage = self._CODE
        elif stage == self._CODE:
            if read[0] != 0xFF:  # 0xFF again is fill before the marker
                self._marker(read[0])
        else:  # a segment's length
            length = struct.unpack(">H", read)[0]
            if length < 2:
                raise ContentError(f"damaged jpeg: segment {self._code:#04x} has length {length}")
            self._left = length - 2
            self._stage, self._need = (self._SKIP, 0) if self._left else (self._after(), 1)

    def _after(self) -> int:
        return self._SCAN if self._code == 0xDA else self._MARK

    def _marker(self, code: int) -> None:
        if code == 0xD9:
            if not self._scans:
                raise ContentError("damaged jpeg: it ends (EOI) before any image data")
            self.done = True
            return
        if code in _STANDALONE:
            self._stage, self._need = self._MARK, 1
            return
        if code in (0x00, 0xD8):
            raise ContentError(f"damaged jpeg: unexpected marker {code:#04x}")
        if code in _SOF:
            self._frame = True
        elif code == 0xDA:
            if not self._frame:
                raise ContentError("damaged jpeg: image data (SOS) before a frame header")
            self._scans += 1
        self._code = code
        self._stage, self._need = self._LENGTH, 2

    def incomplete(self) -> str:
        return "the jpeg is cut off before its end marker (EOI)"


_WEBP_FIRST: Final = frozenset({b"VP8 ", b"VP8L", b"VP8X"})


class _Webp(Walker):
    name = "webp"
    _RIFF, _HEADER, _SKIP = range(3)

    def trailing_problem(self) -> str | None:
        # The RIFF length is the file's own length: anything after it is damage.
        if not self.trailing:
            return None
        return f"damaged webp: {self.trailing} byte(s) after the RIFF length ({self._end})"

    def __init__(self) -> None:
        super().__init__()
        self._stage = self._RIFF
        self._need = 12
        self._left = 0
        self._at = 0  # bytes of the file walked so far
        self._end = 0  # the file's length as its RIFF header gives it
        self._chunks = 0

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self.done:
                self.trailing += end - pos
                return
            if self._stage == self._SKIP:
                take = min(self._left, end - pos)
                pos += take
                self._at += take
                self._left -= take
                if not self._left:
                    self._next_chunk()
                continue
            read, pos = self.take_small(data, pos)
            if read is not None:
                self._at += len(read)
                self._step(read)

    def _step(self, read: bytes) -> None:
        if self._stage == self._RIFF:
            self._end = struct.unpack("<I", read[4:8])[0] + 8
            if self._end % 2:
                raise ContentError("damaged webp: the RIFF length is odd")
            self._next_chunk()
            return
        kind, size = struct.unpack("<4sI", read)
        if self._chunks == 0 and kind not in _WEBP_FIRST:
            raise ContentError(f"damaged webp: the first chunk is {kind!r}, not VP8/VP8L/VP8X")
        self._chunks += 1
        self._left = size + (size & 1)  # chunks are padded to an even length
        if self._at + self._left > self._end:
            raise ContentError(f"damaged webp: chunk {kind!r} runs past the RIFF length")
        self._stage, self._need = self._SKIP, 0
        if not self._left:
            self._next_chunk()

    def _next_chunk(self) -> None:
        if self._at >= self._end:
            if not self._chunks:
                raise ContentError("damaged webp: no chunk inside the RIFF container")
            self.done = True
        self._stage, self._need = self._HEADER, 8

    def incomplete(self) -> str:
        return f"the webp is cut off: its RIFF header gives {self._end} bytes, got {self._at}"


class _Gif(Walker):
    name = "gif"
    # Stages: the header and screen descriptor, a block's introducer, an extension's
    # label, an image descriptor, the LZW code size, a sub-block's size, its data.
    _SCREEN, _BLOCK, _LABEL, _IMAGE, _LZW, _SIZE, _SKIP = range(7)

    def __init__(self) -> None:
        super().__init__()
        self._stage = self._SCREEN
        self._need = 13
        self._left = 0
        self._next = self._BLOCK
        self._images = 0

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self.done:
                self.trailing += end - pos
                return
            if self._stage == self._SKIP:
                take = min(self._left, end - pos)
                pos += take
                self._left -= take
                if not self._left:
                    self._stage, self._need = self._next, 1
                continue
            read, pos = self.take_small(data, pos)
            if read is not None:
                self._step(read)

    def _skip(self, count: int, then: int) -> None:
        self._next = then
        if count:
            self._stage, self._left, self._need = self._SKIP, count, 0
        else:
            self._stage, self._need = then, 1

    def _step(self, read: bytes) -> None:
        stage = self._stage
        if stage == self._SCREEN:
            flags = read[10]
            self._skip(3 << ((flags & 7) + 1) if flags & 0x80 else 0, self._BLOCK)
        elif stage == self._BLOCK:
            if read[0] == 0x3B:
                if not self._images:
                    raise ContentError("damaged gif: it ends before any image")
                self.done = True
            elif read[0] == 0x21:
                self._stage, self._need = self._LABEL, 1
            elif read[0] == 0x2C:
                self._stage, self._need = self._IMAGE, 9
            else:
                raise ContentError(f"damaged gif: unknown block {read[0]:#04x}")
        elif stage == self._LABEL:
            self._stage, self._need = self._SIZE, 1
        elif stage == self._IMAGE:
            self._images += 1
            flags = read[8]
            self._skip(3 << ((flags & 7) + 1) if flags & 0x80 else 0, self._LZW)
        elif stage == self._LZW:
            self._stage, self._need = self._SIZE, 1
        elif read[0]:  # a sub-block's size; 0 ends the block
            self._skip(read[0], self._SIZE)
        else:
            self._stage, self._need = self._BLOCK, 1

    def incomplete(self) -> str:
        return "the gif is cut off before its trailer"


WALKERS: Final[dict[str, type[Walker]]] = {
    "png": _Png,
    "jpeg": _Jpeg,
    "webp": _Webp,
    "gif": _Gif,
}
