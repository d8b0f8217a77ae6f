"""An edit's local input files: checked, hashed for the manifest, and put in the submit body.

A local file is read only when its job is submitted, one job's files at a time, and its body
is built then (see :func:`body_bytes`), so a batch of thousands of photos never holds more
than the submits in flight. What the providers and the vendor's own CLI do, and so we do:

- a file up to :data:`INLINE_MAX_BYTES` is sent inline, as a plain base64 string in its
  field (inside ``images`` too), or as a ``data:`` URI when the client is told so;
- a larger one (up to :data:`MAX_INPUT_BYTES`) is uploaded first, to the upload endpoint the
  user configured, and sent as the URL it answers with;
- a submit refused with 400/422 over its inline data (a refused submit creates no job) is
  sent again with the files uploaded, when an upload endpoint is configured.

All functions here are plain (blocking) file work: callers run them in a worker thread.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Literal

from odiqueue import _wire
from odiqueue._errors import ContentPolicyError, InvalidParameterError, InvalidRequestError
from odiqueue._imageref import ImageRef
from odiqueue._request import ImageRequest

__all__ = [
    "INLINE_MAX_BYTES",
    "MAX_INPUT_BYTES",
    "InlineStyle",
    "body_bytes",
    "check_file",
    "file_digest",
    "identity",
    "large_files",
    "mask_mismatch",
    "read_image",
    "record",
    "refs",
    "refused_inline",
    "sniff",
]

#: The largest local file sent inline; a larger one is uploaded (``upload_url``).
INLINE_MAX_BYTES: Final = 10 * 1024 * 1024
#: The largest local input file at all (OpenAI's limit for an edit's input image).
MAX_INPUT_BYTES: Final = 50 * 1024 * 1024

#: How a local file is sent inline: a plain base64 string, or a ``data:`` URI.
InlineStyle = Literal["base64", "data_uri"]

_HEAD_BYTES: Final = 16

_DIGESTS_KEPT: Final = 4096
_CHUNK: Final = 1024 * 1024


def sniff(head: bytes) -> str | None:
    """The content type the first bytes of a file announce (png, jpeg, webp), else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def refs(request: ImageRequest) -> Iterator[tuple[str, ImageRef]]:
    """Each input reference of the request with its field name (``images[0]``, ``mask``)."""
    for index, ref in enumerate(request.images or ()):
        yield f"images[{index}]", ref
    if request.mask is not None:
        yield "mask", request.mask


def check_file(path: Path, *, mask: bool = False) -> str | None:
    """Why the local file cannot be sent as an input image, or None when it can.

    Checks that it exists, is at most :data:`MAX_INPUT_BYTES`, and is a png, jpeg or webp
    by its bytes. A mask is also checked for an alpha channel when Pillow is installed.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(_HEAD_BYTES)
    except FileNotFoundError:
        return f"no such file: {path}"
    except IsADirectoryError:
        return f"{path} is a folder, not an image file"
    except OSError as exc:
        return f"cannot read {path} ({exc.strerror})"
    if size > MAX_INPUT_BYTES:
        return f"{path} is {size:,} bytes, over the {MAX_INPUT_BYTES:,}-byte cap"
    if sniff(head) is None:
        return f"{path} is not a png, jpeg or webp image"
    if mask:
        return _mask_problem(path)
    return None


def mask_mismatch(image: Path, mask: Path) -> str | None:
    """Why ``mask`` does not fit the edit's first image (another size), or None when it does
    (or when Pillow, or a readable image, is not there to tell)."""
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(image) as first, Image.open(mask) as masking:
            sizes = first.size, masking.size
    except (OSError, ValueError):
        return None
    if sizes[0] == sizes[1]:
        return None
    return (
        f"{mask} is {sizes[1][0]}x{sizes[1][1]}, the first image {image} is "
        f"{sizes[0][0]}x{sizes[0][1]}: a mask has the first image's size"
    )


def _mask_problem(path: Path) -> str | None:
    try:
        from PIL import Image
    except ImportError:  # the alpha check is a courtesy: the server checks masks too
        return None
    try:
        with Image.open(path) as image:
            alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
                "transparency" in image.info
            )
    except (OSError, ValueError) as exc:
        return f"{path} cannot be read as an image ({exc})"
    if not alpha:
        return f"{path} has no alpha channel (a mask's transparent areas are the ones edited)"
    return None


def read_image(field: str, path: Path) -> tuple[bytes, str]:
    """The file's bytes and content type, checked; InvalidParameterError naming ``field``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidParameterError(field, str(path), f"a readable file ({exc.strerror})") from None
    if len(data) > MAX_INPUT_BYTES:
        raise InvalidParameterError(
            field, str(path), f"a file of at most {MAX_INPUT_BYTES:,} bytes ({len(data):,})"
        )
    content_type = sniff(data[:_HEAD_BYTES])
    if content_type is None:
        raise InvalidParameterError(field, str(path), "a png, jpeg or webp image")
    return data, content_type


# A file's digest, by what identifies its content cheaply: a batch that uses one logo for
# every row, or hashes a row for its key and again for the manifest, reads it once.
_digests: OrderedDict[tuple[str, int, int, int], str] = OrderedDict()
_digests_lock = threading.Lock()


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of the file's bytes (OSError when it cannot be read)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    with _digests_lock:
        known = _digests.get(key)
        if known is not None:
            _digests.move_to_end(key)
            return known
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    text = f"sha256:{digest.hexdigest()}"
    with _digests_lock:
        _digests[key] = text
        while len(_digests) > _DIGESTS_KEPT:
            _digests.popitem(last=False)
    return text


def record(request: ImageRequest) -> dict[str, Any]:
    """The request as the manifest records and compares it: as sent, except that each local
    file stands as its content's digest (a changed photo is a changed request)."""
    body = _wire.request_to_json(request)
    if request.files:
        _swap(body, request, lambda field, ref: _digest_of(field, ref))
    return body


def identity(request: ImageRequest, recorded: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What names an item with no key of its own: its :func:`record` (``recorded`` when it
    was worked out already), and its model when the request names one (requests without a
    model keep the keys earlier versions gave)."""
    body = dict(record(request) if recorded is None else recorded)
    if request.model is not None:
        body["model"] = request.model
    return body


def _digest_of(field: str, ref: ImageRef) -> str:
    assert ref.path is not None
    try:
        return file_digest(ref.path)
    except OSError as exc:
        raise InvalidParameterError(
            field, str(ref.path), f"a readable file ({exc.strerror})"
        ) from None


def body_bytes(
    request: ImageRequest, uploaded: Mapping[ImageRef, str], style: InlineStyle
) -> bytes:
    """The submit body, encoded: each local file's URL from ``uploaded``, else its data
    inline. Raises InvalidParameterError naming the field for a file that cannot be sent.

    The base64 text is spliced into the encoded JSON as bytes (it needs no escaping), so a
    file's data exists as its bytes, its base64 and the body, never also as two strings.
    """
    body = _wire.request_to_json(request)
    marks: dict[str, tuple[bytes, bytes]] = {}
    # Stands for a file's base64 until it is spliced in. Looked for with its quotes, which
    # JSON escapes inside any other string, and random, so no other value can equal it.
    token = secrets.token_hex(16)

    def inline(field: str, ref: ImageRef) -> str:
        url = uploaded.get(ref)
        if url is not None:
            return url
        assert ref.path is not None
        data, content_type = read_image(field, ref.path)
        if len(data) > INLINE_MAX_BYTES:
            raise InvalidParameterError(
                field,
                str(ref.path),
                f"at most {INLINE_MAX_BYTES:,} bytes inline ({len(data):,}): set upload_url= "
                "(--upload-url) so larger files are uploaded",
            )
        prefix = f'"data:{content_type};base64,' if style == "data_uri" else '"'
        mark = f"{token}-{len(marks)}"
        marks[f'"{mark}"'] = (prefix.encode(), base64.b64encode(data))
        del data
        return mark

    _swap(body, request, inline)
    encoded = _wire.dumps(body).encode()
    if not marks:
        return encoded
    parts: list[bytes] = []
    for mark, (prefix, data) in marks.items():
        head, _, encoded = encoded.partition(mark.encode())
        parts += (head, prefix, data, b'"')
    parts.append(encoded)
    marks.clear()
    return b"".join(parts)


def _swap(body: dict[str, Any], request: ImageRequest, value: Any) -> None:
    """Replace each local file's path in ``body`` with ``value(field, ref)``."""
    images = body.get("images")
    for field, ref in refs(request):
        if not ref.is_file:
            continue
        if field == "mask":
            body["mask"] = value(field, ref)
        else:
            assert isinstance(images, list)
            images[int(field[7:-1])] = value(field, ref)


def large_files(request: ImageRequest) -> list[tuple[str, ImageRef, int]]:
    """The local files too large to send inline, with their fields and sizes."""
    found = []
    for field, ref in refs(request):
        if ref.path is not None:
            try:
                size = os.stat(ref.path).st_size
            except OSError:
                continue  # reported by body_bytes, with its field
            if size > INLINE_MAX_BYTES:
                found.append((field, ref, size))
    return found


_INLINE_WORDS: Final = ("image", "mask", "base64", "data", "url", "format", "file")


def refused_inline(error: InvalidRequestError) -> bool:
    """Whether a 400/422 refusal of a submit with inline files is about that data (it names
    an image field or the format), so that uploading them instead may succeed."""
    if error.status not in (400, 422) or isinstance(error, ContentPolicyError):
        return False
    text = f"{error.message} {error.body!r}".lower()
    return any(word in text for word in _INLINE_WORDS)
