"""A product list's bytes to text: what the file is, and which encoding it was saved in.

A BOM says what the file is (UTF-8, UTF-16, UTF-32); without one, ``--encoding`` or UTF-8.
A file that is plainly not text (an image, an archive) is named by its signature, and a
file that is not UTF-8 gets the position of the first byte that does not fit, a likely
encoding (charset-normalizer's guess, when installed) and the flag.
"""

from __future__ import annotations

import codecs
import zipfile
from pathlib import Path
from typing import Final

from odiqueue._cli._table import InputError

__all__ = ["binary_kind", "decode", "is_workbook"]

#: Bytes looked at to guess an encoding.
_GUESS_BYTES: Final = 64 * 1024
_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16's: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_MAGIC: Final = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel .xls (or other Office 97) file"),
)


def binary_kind(data: bytes) -> str | None:
    """What the bytes are when they are plainly not text (by their signature), else None."""
    for magic, what in _MAGIC:
        if data.startswith(magic):
            return what
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "a WebP image"
    return None


def is_workbook(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def decode(data: bytes, encoding: str | None, path: Path) -> str:
    """The file's text. A BOM says what the file is; without one, ``encoding`` (or UTF-8).

    Raises :class:`InputError` naming the line and column of the first byte that does not
    fit, the likely encoding, and the ``--encoding`` flag.
    """
    for bom, name in _BOMS:
        if data.startswith(bom):
            encoding = name
            break
    else:
        if encoding is None and _looks_utf16(data):
            raise InputError(
                f"{path}: looks like UTF-16 text without a byte order mark: pass "
                f"--encoding {_looks_utf16(data)}"
            )
    try:
        return data.decode(encoding or "utf-8")
    except UnicodeDecodeError as exc:
        where = _position(data, exc.start)
        bad = data[exc.start : exc.start + 1].hex()
        if encoding is not None:
            raise InputError(
                f"{path}: not {encoding} text ({where}: byte 0x{bad}): pass the encoding it "
                "was saved in with --encoding NAME"
            ) from None
        guess = _guess_encoding(data)
        fix = (
            f"it looks like {guess}: pass --encoding {guess}"
            if guess
            else "pass the encoding it was saved in, e.g. --encoding cp1251 or --encoding latin-1"
        )
        raise InputError(f"{path}: not UTF-8 text ({where}: byte 0x{bad}); {fix}") from None


def _looks_utf16(data: bytes) -> str | None:
    """``utf-16-le``/``-be`` when NULs fill every other byte of the start (ASCII in UTF-16)."""
    head = data[:2048]
    if len(head) < 4:
        return None
    odd, even = head[1::2], head[0::2]
    if odd.count(0) > 0.6 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.6 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def _position(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def _guess_encoding(data: bytes) -> str | None:
    """The encoding charset-normalizer (when installed) finds likely, if it decodes it all."""
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - the cli extra brings it
        return None
    best = from_bytes(data[:_GUESS_BYTES]).best()
    if best is None:
        return None
    name = str(best.encoding)
    try:
        data.decode(name)
    except (UnicodeDecodeError, LookupError):
        return None
    return name
