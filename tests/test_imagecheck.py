"""The structural image check: whole images pass however they are cut into pieces; cut-off,
damaged or padded-out ones are refused, with a reason."""

from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path

import pytest

from odiqueue._imagecheck import ContentError, ImageCheck, decode
from odiqueue.testing._images import render

PIL = pytest.importorskip("PIL.Image")


def encoded(fmt: str, **options: object) -> bytes:
    """A noisy (so, not trivially compressible) image encoded by Pillow."""
    image = PIL.effect_noise((96, 64), 60).convert("RGB")
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


IMAGES = {
    "png": render("png", 64, 48, False, None),
    "png padded": render("png", 64, 48, False, 300_000),
    "png noise": encoded("PNG"),
    "jpeg": render("jpeg", 64, 48, False, None),
    "jpeg padded": render("jpeg", 64, 48, False, 300_000),
    "jpeg noise": encoded("JPEG", quality=95),
    "jpeg progressive": encoded("JPEG", progressive=True),
    "jpeg with exif": encoded("JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00"),
    "webp": render("webp", 64, 48, False, None),
    "webp padded": render("webp", 64, 48, False, 300_000),
    "webp lossless": encoded("WEBP", lossless=True),
    "gif": encoded("GIF"),
}


def check(data: bytes, cuts: list[int]) -> str:
    """Feed ``data`` cut at ``cuts``; the format, or ContentError."""
    walk = ImageCheck()
    start = 0
    for cut in [*cuts, len(data)]:
        walk.feed(data[start:cut])
        start = cut
    return walk.finish()


@pytest.mark.parametrize("name", IMAGES)
def test_whole_images_pass_however_they_are_cut(name: str) -> None:
    """Every whole image passes fed in one piece, byte by byte around its start and end, and
    cut at random places (pieces as a network delivers them)."""
    data = IMAGES[name]
    fmt = name.split()[0]
    assert check(data, []) == fmt
    edges = [*range(1, 40), *range(len(data) - 40, len(data))]
    assert check(data, edges) == fmt
    rng = random.Random(name)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(data)), 5))
        assert check(data, cuts) == fmt


@pytest.mark.parametrize("name", IMAGES)
def test_every_cut_off_image_is_refused(name: str) -> None:
    """An image cut off anywhere (here at 200 places, and one byte short) is refused."""
    data = IMAGES[name]
    rng = random.Random(name)
    ends = {len(data) - 1, len(data) // 2, *rng.sample(range(len(data)), min(200, len(data)))}
    for end in ends:
        with pytest.raises(ContentError):
            check(data[:end], [])


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_a_real_header_followed_by_random_bytes_is_refused(fmt: str) -> None:
    """The first bytes of a real image followed by noise do not make an image."""
    rng = random.Random(fmt)
    head = IMAGES[fmt][:16]
    for _ in range(50):
        with pytest.raises(ContentError):
            check(head + rng.randbytes(rng.randrange(1, 5000)), [])


def test_a_png_chunk_with_a_flipped_bit_fails_its_crc() -> None:
    """One bit changed inside the compressed pixels of a PNG is caught by the chunk's CRC."""
    data = bytearray(IMAGES["png noise"])
    data[len(data) // 2] ^= 0x10
    with pytest.raises(ContentError, match="CRC"):
        check(bytes(data), [])


def test_a_png_without_image_data_is_refused() -> None:
    """IHDR then IEND, CRCs right, but no IDAT: no picture."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", bytes(13)) + chunk(b"IEND", b"")
    with pytest.raises(ContentError, match="IDAT"):
        check(data, [])


@pytest.mark.parametrize("name", ["png", "jpeg noise"])
def test_bytes_after_the_end_marker_are_allowed(name: str) -> None:
    """Decoders ignore bytes after IEND/EOI (an MPO's second picture lives there)."""
    assert check(IMAGES[name] + b"trailer", []) == name.split()[0]


def test_a_webp_longer_than_its_riff_length_is_refused() -> None:
    """WebP says its length: bytes beyond it mean something else was sent."""
    with pytest.raises(ContentError, match="after the RIFF length"):
        check(IMAGES["webp"] + b"\x00\x00", [])


def test_empty_and_unknown_bytes_are_refused() -> None:
    """No bytes, or bytes of no known image format, are refused with the reason."""
    with pytest.raises(ContentError, match="empty"):
        check(b"", [])
    with pytest.raises(ContentError, match="not an image"):
        check(b"<html>an error page</html>", [])


def test_decode_refuses_what_the_structure_cannot_see(tmp_path: Path) -> None:
    """A PNG whose compressed pixels are garbage under a correct CRC passes the structural
    walk; Pillow's full decode refuses it."""
    whole = IMAGES["png"]
    path = tmp_path / "a.png"
    path.write_bytes(whole)
    decode(str(path))  # a whole image decodes
    at = whole.index(b"IDAT")
    (length,) = struct.unpack(">I", whole[at - 4 : at])
    garbage = bytes(range(256)) * (length // 256 + 1)
    body = b"IDAT" + garbage[:length]
    data = whole[:at] + body + struct.pack(">I", zlib.crc32(body)) + whole[at + 4 + length + 4 :]
    assert check(data, []) == "png"
    path.write_bytes(data)
    with pytest.raises(ContentError, match="does not decode"):
        decode(str(path))
