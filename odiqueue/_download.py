"""One image of a result to one verified file: inline bytes written, or a URL streamed.

Either way the bytes go through ``_sink`` (part file, verification, rename). A URL is
fetched through the client's transport, so the key's rules and the retry policy apply to
image hosts too; bytes that turn out not to be the image are retried like a cut-off body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from odiqueue._config import parse_url
from odiqueue._errors import DecodeError, TransportError
from odiqueue._http import Transport
from odiqueue._models import Image
from odiqueue._retry import retryable
from odiqueue._sink import ContentError, SavedFile, write_atomic

__all__ = ["save_image"]


async def save_image(
    transport: Transport,
    image: Image,
    target: Path,
    overwrite: bool,
    expected_format: str | None,
    request_id: str | None,
) -> SavedFile:
    """Save ``image`` at ``target`` (see :meth:`AsyncClient.download`)."""
    announced = image.format
    fmt = expected_format or (announced.value if announced is not None else None)
    if image.b64 is not None:
        try:
            data = image.decode()
        except ValueError as exc:
            raise DecodeError(str(exc), path="image", request_id=request_id) from None

        async def once() -> AsyncIterator[bytes]:
            yield data

        try:
            return await write_atomic(target, once(), expected_format=fmt, overwrite=overwrite)
        except ContentError as exc:
            raise DecodeError(f"inline image: {exc}", path="image", request_id=request_id) from None
    if image.url is None:
        raise ValueError("the image has neither a url nor inline data")
    try:
        url = parse_url(image.url)
    except ValueError:
        raise DecodeError(
            f"the image URL is not a URL: {image.url[:80]!r}",
            path="image.url",
            request_id=request_id,
        ) from None

    async def attempt() -> SavedFile:
        async with transport.download(url, request_id=request_id) as (length, chunks):
            try:
                return await write_atomic(
                    target,
                    chunks,
                    expected_length=length,
                    expected_format=fmt,
                    overwrite=overwrite,
                )
            except ContentError as exc:
                raise retryable(
                    TransportError(f"bad image from {url.host}: {exc}", request_id=request_id)
                ) from exc

    return await transport.retrier.run(attempt, call="image", request_id=request_id)
