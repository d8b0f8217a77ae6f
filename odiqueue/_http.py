"""One HTTP exchange with the API: timeouts, retries, auth only toward the API's own origin.

This is the only module that talks to aiohttp, and so the one boundary where aiohttp's
exceptions become odiqueue's (``_translate``). Retry rules, in one table:

=============  =====================================================  ==================
call           retried on                                             never retried on
=============  =====================================================  ==================
status,        connect errors, timeouts, resets, 408, 429, 500,       400, 401, 402,
result,        502, 503, 504, malformed JSON                          403, 404, 422
cancel, image
submit         connect errors (never sent), 429 and 503 (refused)      anything else: a
                                                                      lost reply raises
                                                                      SubmissionUncertain
=============  =====================================================  ==================
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any, Final

import aiohttp
import anyio
import attrs
from multidict import CIMultiDictProxy
from yarl import URL

from odiqueue import _backoff, _wire
from odiqueue._config import (
    Limits,
    RetryPolicy,
    Secret,
    Timeouts,
    is_loopback,
    parse_url,
)
from odiqueue._errors import (
    APIError,
    ConnectError,
    DecodeError,
    ImageDownloadError,
    RequestTimeoutError,
    ResponseTooLargeError,
    ServerError,
    SubmissionUncertainError,
    TransportError,
    UnsafeURLError,
    error_from_reply,
)
from odiqueue._proxy import ProxySettings
from odiqueue._retry import Call, Retrier, Retryable
from odiqueue._trust import Routes

__all__ = ["Reply", "Transport"]

log = logging.getLogger("odiqueue")


RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
SUBMIT_RETRY_STATUSES: Final = frozenset({429, 503})
_METHODS: Final[dict[Call, str]] = {
    "submit": "POST",
    "status": "GET",
    "result": "GET",
    "cancel": "PUT",
    "image": "GET",
}
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS: Final = 5


@attrs.frozen
class Reply:
    """A successful (or tolerated) reply: HTTP status and parsed JSON body."""

    status: int
    data: Any
    provider_request_id: str | None = None


class Transport:
    """The client's one aiohttp session, and the rules for using it."""

    def __init__(
        self,
        *,
        api_key: Secret,
        api_origin: URL,
        allowed_hosts: Collection[str],
        timeouts: Timeouts,
        limits: Limits,
        retry: RetryPolicy,
        user_agent: str,
        rng: random.Random,
        proxies: ProxySettings | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._auth = {"Authorization": f"Bearer {api_key.reveal()}"}
        # A server may quote the key back in an error ("invalid token sk-..."): such a body
        # is shown to people (messages, logs, failed.csv), so the key is cut out first.
        self._key = (api_key.reveal().encode(), str(api_key).encode())
        #: Which URLs may receive the key, and through which proxy a request goes.
        self.routes = Routes(api_origin, allowed_hosts, proxies)
        self._timeouts = timeouts
        self._limits = limits
        self.retrier = Retrier(retry, rng)
        self._user_agent = user_agent
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Create the one aiohttp session, sized to the configured limits."""
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections,
            limit_per_host=0,
            ttl_dns_cache=300,
            ssl=self._ssl,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self._timeouts.connect, sock_read=self._timeouts.read
            ),
            headers={"User-Agent": self._user_agent},
            auto_decompress=True,
            raise_for_status=False,
        )

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # --- one call with retries -----------------------------------------------------------

    async def call(
        self,
        call: Call,
        url: URL,
        *,
        body: Any = None,
        request_id: str | None = None,
        tolerate: Callable[[int, bytes], bool] | None = None,
    ) -> Reply:
        """Send one API request and return its JSON reply, retrying what is safe to retry.

        ``tolerate(status, body)`` marks an error status as a normal answer for this call (a
        result that is not ready yet, a cancel of a finished job).
        """
        payload = None if body is None else _wire.dumps(body).encode()

        async def attempt() -> Reply:
            return await self._exchange(call, url, payload, request_id, tolerate)

        return await self.retrier.run(attempt, call=call, request_id=request_id)

    async def _exchange(
        self,
        call: Call,
        url: URL,
        payload: bytes | None,
        request_id: str | None,
        tolerate: Callable[[int, bytes], bool] | None,
    ) -> Reply:
        method = _METHODS[call]
        submit = call == "submit"
        started = time.monotonic()
        try:
            # A submit in flight is never abandoned half-way by a cancellation: once the
            # body may have left, only its reply can say whether a paid job exists. The
            # shield lasts one exchange (bounded by the timeouts), never a retry's wait.
            with anyio.CancelScope(shield=True) if submit else contextlib.nullcontext():
                response = await self._send(method, url, payload, request_id)
                try:
                    body = await self._read_capped(
                        response, self._limits.max_json_bytes, request_id
                    )
                    status, headers = response.status, response.headers
                finally:
                    response.release()
        except ResponseTooLargeError as exc:
            if submit:
                raise SubmissionUncertainError(str(exc), request_id=request_id) from exc
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            error, reached = _translate(exc, request_id)
            if _needs_proxy_credentials(exc):
                raise error from exc  # only other credentials help: not retried
            if submit and reached:
                raise SubmissionUncertainError(str(error), request_id=request_id) from exc
            raise Retryable(error) from exc
        provider_id = headers.get("X-Request-Id")
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s of request %s: %s %s -> HTTP %d in %.3fs",
                call,
                request_id or "(new)",
                method,
                url.path,
                status,
                time.monotonic() - started,
            )
        if status < 300 or (tolerate is not None and tolerate(status, body)):
            try:
                data = json.loads(body)
            except (ValueError, RecursionError):
                bad = DecodeError(
                    f"HTTP {status} reply is not JSON: {self._scrub(body)[:80]!r}",
                    request_id=request_id,
                    status=status,
                    provider_request_id=provider_id,
                )
                if submit:
                    raise SubmissionUncertainError(str(bad), request_id=request_id) from None
                raise Retryable(bad) from None
            return Reply(status, data, provider_id)
        raise self._error_for(call, status, body, headers, request_id)

    def _scrub(self, body: bytes) -> bytes:
        """``body`` without the API key in it."""
        key, shown = self._key
        return body.replace(key, shown) if key in body else body

    def _error_for(
        self,
        call: Call,
        status: int,
        body: bytes,
        headers: CIMultiDictProxy[str],
        request_id: str | None,
    ) -> Exception:
        submit = call == "submit"
        body = self._scrub(body)
        retry_after = _backoff.retry_after_of(headers)
        error = error_from_reply(
            status,
            body,
            request_id=request_id,
            provider_request_id=headers.get("X-Request-Id"),
            retry_after=retry_after,
        )
        log.debug(
            "%s of request %s: HTTP %d: %s", call, request_id or "(new)", status, error.message
        )
        if status == 429 and submit:
            self.retrier.submits_refused += 1
        if submit:
            if status in SUBMIT_RETRY_STATUSES:
                return Retryable(error, retry_after)
            if isinstance(error, ServerError):
                # A gateway or server error after the body was sent: the job may exist.
                uncertain = SubmissionUncertainError(
                    f"the server answered HTTP {status} ({error.message})",
                    request_id=request_id,
                    status=status,
                    provider_request_id=error.provider_request_id,
                )
                uncertain.__cause__ = error
                return uncertain
            return error
        if status in RETRY_STATUSES:
            return Retryable(error, retry_after)
        return error

    async def _send(
        self, method: str, url: URL, payload: bytes | None, request_id: str | None
    ) -> aiohttp.ClientResponse:
        """Send a request, following redirects by hand so the key never leaves its origin.

        The caller releases the response (a plain coroutine rather than a context manager:
        this runs for every request).
        """
        session = self._session
        if session is None:
            raise RuntimeError("transport used after close")  # the client checks first
        for _ in range(_MAX_REDIRECTS + 1):
            headers = dict(self._auth) if self.routes.is_trusted(url) else {}
            if payload is not None:
                headers["Content-Type"] = "application/json"
            proxy, proxy_headers = self.routes.through(url, headers)
            response = await session.request(
                method,
                url,
                data=payload,
                headers=headers,
                allow_redirects=False,
                proxy=proxy,
                proxy_headers=proxy_headers,
            )
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or not location:
                return response
            response.release()
            if method == "POST" and response.status not in (307, 308):
                raise APIError(
                    f"the API redirected a POST with HTTP {response.status}",
                    status=response.status,
                    request_id=request_id,
                )
            try:
                url = url.join(parse_url(location))
            except ValueError:
                raise APIError(
                    f"the API redirected to something that is not a URL: {location[:80]!r}",
                    status=response.status,
                    request_id=request_id,
                ) from None
            if response.status == 303:
                method, payload = "GET", None
        raise APIError(f"more than {_MAX_REDIRECTS} redirects", request_id=request_id)

    async def _read_capped(
        self, response: aiohttp.ClientResponse, cap: int, request_id: str | None
    ) -> bytes:
        length = response.content_length
        if length is not None and length > cap:
            raise ResponseTooLargeError(
                f"reply of {length} bytes is over the {cap}-byte cap", request_id=request_id
            )
        if length is not None and "Content-Encoding" not in response.headers:
            # The common case: a plain body of known, allowed size. (A compressed one is
            # counted as it inflates, below.)
            return await response.read()
        chunks: list[bytes] = []
        total = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            total += len(chunk)
            if total > cap:
                raise ResponseTooLargeError(
                    f"reply is over the {cap}-byte cap", request_id=request_id
                )
            chunks.append(chunk)
        return b"".join(chunks)

    # --- downloads -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def download(
        self, url: URL, *, request_id: str | None
    ) -> AsyncIterator[tuple[int | None, AsyncIterator[bytes]]]:
        """Open an image download: yields (Content-Length, chunk iterator).

        Errors are raised as :class:`~odiqueue._retry.Retryable` where a new attempt may
        help, for use inside :meth:`Retrier.run`. The key is sent only to a trusted origin,
        on every hop.
        """
        if url.scheme not in ("http", "https"):
            raise UnsafeURLError(f"image URL scheme {url.scheme!r} is not http(s)")
        if url.scheme == "http" and not is_loopback(url.host or "") and self.routes.is_trusted(url):
            raise UnsafeURLError("refusing to send the API key over plain http")
        try:
            response = await self._send("GET", url, None, request_id)
            try:
                # The path only: a CDN's signed query is nobody's business in a log.
                log.debug(
                    "image of request %s: GET %s%s -> HTTP %d",
                    request_id or "(unknown)",
                    url.host,
                    url.path,
                    response.status,
                )
                if response.status >= 300:
                    raise _image_host_error(response.status, response.headers, url, request_id)
                # With a Content-Encoding, Content-Length counts the compressed bytes, not
                # the image: only the cap (counted as it inflates) applies then.
                encoded = "Content-Encoding" in response.headers
                length = None if encoded else response.content_length
                if length is not None and length > self._limits.max_image_bytes:
                    raise ResponseTooLargeError(
                        f"image of {length} bytes is over the "
                        f"{self._limits.max_image_bytes}-byte cap",
                        request_id=request_id,
                    )
                yield length, self._chunks(response, request_id)
            finally:
                response.release()
        except (aiohttp.ClientError, TimeoutError) as exc:
            error, _ = _translate(exc, request_id)
            if _needs_proxy_credentials(exc):
                raise error from exc
            raise Retryable(error) from exc

    async def _chunks(
        self, response: aiohttp.ClientResponse, request_id: str | None
    ) -> AsyncIterator[bytes]:
        total = 0
        async for chunk in response.content.iter_chunked(256 * 1024):
            total += len(chunk)
            if total > self._limits.max_image_bytes:
                raise ResponseTooLargeError(
                    f"image is over the {self._limits.max_image_bytes}-byte cap",
                    request_id=request_id,
                )
            yield chunk


def _image_host_error(
    status: int, headers: CIMultiDictProxy[str], url: URL, request_id: str | None
) -> Exception:
    """An error status from an image's host, as a failure of that one image.

    Not read through the API's error table: a CDN's 401 or 403 (an expired signed link) is
    not a bad key, and its 429 is not the API's rate limit, so neither may stop a batch or
    slow every API call. A 404 is retried too: a CDN may serve a new file a moment late.
    """
    error = ImageDownloadError(
        f"the image host {url.host} answered HTTP {status}",
        request_id=request_id,
        status=status,
        provider_request_id=headers.get("X-Request-Id"),
    )
    if status in RETRY_STATUSES or status == 404:
        return Retryable(error, _backoff.retry_after_of(headers))
    return error


def _needs_proxy_credentials(exc: BaseException) -> bool:
    """Whether the proxy asked for (other) credentials: HTTP 407 to the CONNECT."""
    return isinstance(exc, aiohttp.ClientHttpProxyError) and exc.status == 407


def _translate(exc: BaseException, request_id: str | None) -> tuple[TransportError, bool]:
    """aiohttp's exception as ours, and whether the request may have reached the server."""
    context: dict[str, Any] = {"request_id": request_id}
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        # The proxy refused the tunnel (407: its credentials): the API was never reached.
        # Its own words only: the exception's text would carry the URL.
        hint = " (check the user and password in the proxy URL)" if exc.status == 407 else ""
        return ConnectError(
            f"the proxy refused to connect: HTTP {exc.status} {exc.message}{hint}", **context
        ), False
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return ConnectError(
            f"could not connect to the proxy: {exc.os_error or exc}", **context
        ), False
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectError(f"timed out connecting: {exc}", **context), False
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectError(f"could not connect: {exc.os_error or exc}", **context), False
    if isinstance(exc, (aiohttp.ServerTimeoutError, TimeoutError)):
        return RequestTimeoutError("no reply within the read timeout", **context), True
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return TransportError("the server closed the connection without a reply", **context), True
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TransportError(f"the reply was cut off: {exc}", **context), True
    return TransportError(f"{type(exc).__name__}: {exc}", **context), True
