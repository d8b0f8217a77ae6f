"""One image of a result to one verified file: inline bytes written, or a URL streamed.

Either way the bytes go through ``_sink`` (part file, verification, rename). A URL is
fetched through the client's transport, so the key's rules and the retry policy apply to
image hosts too; bytes that turn out not to be the image (cut off, damaged: see
``_imagecheck``) are retried like a cut-off body. ``DownloadPolicy`` bounds each download:
in total (a cancel scope), and by a minimum rate (``_pace``); the read timeout bounds each
wait for a piece.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final

import anyio

from odiqueue._account import parse_url
from odiqueue._config import DownloadPolicy
from odiqueue._errors import (
    DecodeError,
    Fix,
    InvalidParameterError,
    OutputFileError,
    OutputFileExistsError,
    RequestTimeoutError,
    TransportError,
)
from odiqueue._http import Transport
from odiqueue._models import Image
from odiqueue._pace import paced
from odiqueue._retry import retryable
from odiqueue._sink import ContentError, SavedFile, write_atomic

__all__ = ["save_image"]

_REPLACE_IT: Final = "pass {setting} to replace it"


@contextlib.contextmanager
def _output_errors(target: Path, request_id: str | None) -> Iterator[None]:
    """The disk's refusals as the library's errors: a taken name as OutputFileExistsError
    (with its fix), anything else as OutputFileError."""
    try:
        yield
    except FileExistsError as exc:
        raise OutputFileExistsError(
            str(exc), request_id=request_id, fix=Fix("overwrite", True, _REPLACE_IT)
        ) from exc
    except OSError as exc:
        # Network errors arrive translated (TransportError): an OSError here is the disk's.
        error = OutputFileError(f"could not write {target}: {exc}", request_id=request_id)
        raise error from exc


async def save_image(
    transport: Transport,
    image: Image,
    target: Path,
    overwrite: bool,
    expected_format: str | None,
    request_id: str | None,
    policy: DownloadPolicy,
) -> SavedFile:
    """Save ``image`` at ``target`` (see :meth:`AsyncClient.download`): only
    :class:`~odiqueue.OdiqueueError`s come out, a taken name as OutputFileExistsError."""
    with _output_errors(target, request_id):
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
                return await write_atomic(
                    target, once(), expected_format=fmt, overwrite=overwrite, verify=policy.verify
                )
            except ContentError as exc:
                raise DecodeError(
                    f"inline image: {exc}", path="image", request_id=request_id
                ) from None
        if image.url is None:
            raise InvalidParameterError("image", image, "an Image with a url or inline data")
        try:
            url = parse_url(image.url)
        except ValueError:
            raise DecodeError(
                f"the image URL is not a URL: {image.url[:80]!r}",
                path="image.url",
                request_id=request_id,
            ) from None

        host = url.host or "?"
        total = policy.total

        async def attempt() -> SavedFile:
            try:
                with contextlib.nullcontext() if total is None else anyio.fail_after(total):
                    async with transport.download(url, request_id=request_id) as (length, chunks):
                        return await write_atomic(
                            target,
                            paced(chunks, policy, host=host, request_id=request_id),
                            expected_length=length,
                            expected_format=fmt,
                            overwrite=overwrite,
                            verify=policy.verify,
                        )
            except ContentError as exc:
                raise retryable(
                    TransportError(f"bad image from {host}: {exc}", request_id=request_id)
                ) from exc
            except RequestTimeoutError as exc:  # too slow (``paced``)
                raise retryable(exc) from exc
            except TimeoutError:  # the total bound (the transport turns its own timeouts)
                raise retryable(
                    RequestTimeoutError(
                        f"the image from {host} took over {total}s", request_id=request_id
                    )
                ) from None

        return await transport.retrier.run(attempt, call="image", request_id=request_id)
