"""A submit that carries local files: sent inline, or uploaded where it must be.

A local input image goes inline in the request body (plain base64, or a ``data:`` URI: the
``inline_images`` setting), built only when its job is sent so that at most
``Limits.max_inline_submits`` such bodies exist at once. A file over the inline limit, or
every file of a submit the server refused for its inline data (a refusal creates no job,
so sending again pays once), goes to the upload endpoint the user named (``upload_url``),
and the request carries its URL instead. The key goes to that endpoint only because the
user named it.
"""

from __future__ import annotations

import logging

import anyio
from yarl import URL

from odiqueue import _edits, _wire
from odiqueue._account import resolve_base_url
from odiqueue._errors import ConfigurationError, InvalidParameterError, InvalidRequestError
from odiqueue._http import Reply, Transport
from odiqueue._imageref import ImageRef
from odiqueue._request import ImageRequest

__all__ = ["FileSubmits"]

log = logging.getLogger("odiqueue")


class FileSubmits:
    """The submits of one client whose requests carry local files."""

    def __init__(
        self,
        transport: Transport,
        upload_url: str | None,
        inline_images: _edits.InlineStyle,
        max_inline: int,
        *,
        allow_insecure_http: bool,
    ) -> None:
        if inline_images not in ("base64", "data_uri"):
            raise ConfigurationError(
                f"inline_images={inline_images!r} must be 'base64' or 'data_uri'"
            )
        self._transport = transport
        self._upload_url = (
            None
            if upload_url is None
            else _upload_endpoint(upload_url, allow_insecure_http=allow_insecure_http)
        )
        if self._upload_url is not None:
            transport.routes.trust(self._upload_url)
        self._inline_style: _edits.InlineStyle = inline_images
        self._max_inline = max_inline
        self._inline: anyio.CapacityLimiter | None = None

    def open(self) -> None:
        """Make the limit on bodies at once (on the client's event loop)."""
        self._inline = anyio.CapacityLimiter(self._max_inline)

    async def submit(self, request: ImageRequest, queue: URL) -> Reply:
        """Submit a request with local input files: inline, or uploaded where it must be."""
        uploaded: dict[ImageRef, str] = {}
        for field, ref, size in await anyio.to_thread.run_sync(_edits.large_files, request):
            if self._upload_url is None:
                raise InvalidParameterError(
                    field,
                    str(ref),
                    f"at most {_edits.INLINE_MAX_BYTES:,} bytes inline ({size:,}): set "
                    "upload_url= (--upload-url) so larger files are uploaded",
                )
            uploaded[ref] = await self._upload(field, ref)
        try:
            return await self._send_files(request, uploaded, queue)
        except InvalidRequestError as exc:
            if set(request.files) <= uploaded.keys() or not _edits.refused_inline(exc):
                raise
            if self._upload_url is None:
                raise InvalidRequestError(
                    f"the server refused the inline image data ({exc.message}): set "
                    "upload_url= (--upload-url) so local files are uploaded and sent as URLs",
                    code=exc.code,
                    body=exc.body,
                    status=exc.status,
                    provider_request_id=exc.provider_request_id,
                ) from exc
            log.info("the server refused inline image data (%s): uploading instead", exc.message)
        # A refused submit created no job: sending it again with URLs pays once.
        for field, ref in _edits.refs(request):
            if ref.is_file and ref not in uploaded:
                uploaded[ref] = await self._upload(field, ref)
        return await self._send_files(request, uploaded, queue)

    async def _send_files(
        self, request: ImageRequest, uploaded: dict[ImageRef, str], queue: URL
    ) -> Reply:
        assert self._inline is not None
        # The body is built here, when it is sent, and dropped with this frame: only
        # ``max_inline_submits`` of them exist at once, whatever the batch's size.
        async with self._inline:
            payload = await anyio.to_thread.run_sync(
                _edits.body_bytes, request, uploaded, self._inline_style
            )
            try:
                return await self._transport.call("submit", queue, payload=payload)
            finally:
                del payload

    async def _upload(self, field: str, ref: ImageRef) -> str:
        """Upload one local file to the configured endpoint; the URL it answered with."""
        assert self._upload_url is not None
        assert ref.path is not None
        assert self._inline is not None
        path = ref.path
        async with self._inline:
            data, content_type = await anyio.to_thread.run_sync(_edits.read_image, field, path)
            reply = await self._transport.upload(self._upload_url, data, path.name, content_type)
        url = _wire.decode_upload(reply.data)
        log.info("uploaded %s as %s", path.name, url)
        return url


def _upload_endpoint(raw: str, *, allow_insecure_http: bool) -> URL:
    """The upload endpoint's URL, checked as the base URL is (https, or http on loopback)."""
    try:
        return resolve_base_url(raw, None, allow_insecure_http=allow_insecure_http)
    except ConfigurationError as exc:
        raise ConfigurationError(str(exc).replace("base_url=", "upload_url=", 1)) from None
