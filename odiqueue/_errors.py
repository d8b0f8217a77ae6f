"""The exception tree, and the one place that maps HTTP replies onto it.

::

    OdiqueueError
    ├── InvalidParameterError      a request field out of its documented range (ValueError)
    ├── ConfigurationError         a bad client setting (ValueError)
    ├── ClientClosedError          the client used before ``async with`` or after closing
    ├── UnsafeURLError             a reply URL on a foreign origin, or plain http to a remote host
    ├── DecodeError                a reply that does not parse (names the JSON path)
    ├── ResponseTooLargeError      a reply or image over its size cap
    ├── OutputFileError            an image could not be written where it was meant to go
    │   └── OutputFileExistsError  the name holds another file (also a FileExistsError)
    ├── ImageDownloadError         the image host answered with an error status (never fatal)
    ├── SubmissionUncertainError   the submit POST may have created a paid job: do not blindly retry
    ├── BudgetExceededError        a batch's cap on images or estimated cost stopped a submit
    ├── TransportError             no HTTP reply at all
    │   ├── ConnectError           the request never reached the server
    │   └── RequestTimeoutError    connected, but no reply in time
    ├── APIError                   the server answered with an error status
    │   ├── InvalidRequestError    400, 422
    │   │   └── ContentPolicyError CONTENT_BLOCKED, moderation_blocked
    │   ├── AuthenticationError    401                                       (fatal)
    │   ├── InsufficientCreditsError 402, codes 40201..40208, 403 "balance" (fatal)
    │   ├── PermissionDeniedError  403                                       (fatal)
    │   ├── NotFoundError          404
    │   ├── RateLimitError         429, carries ``retry_after``
    │   └── ServerError            5xx
    └── JobError                   the job itself ended badly
        ├── JobFailedError         COMPLETED with an error; carries ``error_type``
        ├── JobCancelledError      COMPLETED with error_type CANCELED
        └── DeadlineExceededError  the caller's per-job deadline passed

Every error carries what is known of its context: ``request_id`` (the job), ``status``
(HTTP), ``provider_request_id`` (the ``X-Request-Id`` header) and ``message`` (the server's
own words). ``fatal`` is true for errors that no other job of the same key can escape
(authentication, credits, permission): a batch stops submitting when it meets one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "APIError",
    "AuthenticationError",
    "ClientClosedError",
    "ConfigurationError",
    "ConnectError",
    "ContentPolicyError",
    "DeadlineExceededError",
    "DecodeError",
    "ImageDownloadError",
    "InsufficientCreditsError",
    "InvalidParameterError",
    "InvalidRequestError",
    "JobCancelledError",
    "JobError",
    "JobFailedError",
    "NotFoundError",
    "OdiqueueError",
    "OutputFileError",
    "OutputFileExistsError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseTooLargeError",
    "ServerError",
    "SubmissionUncertainError",
    "TransportError",
    "UnsafeURLError",
    "error_from_reply",
]


class OdiqueueError(Exception):
    """Root of every error this library raises."""

    fatal: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        status: int | None = None,
        provider_request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.status = status
        self.provider_request_id = provider_request_id

    def __str__(self) -> str:
        context = [
            f"{name}={value}"
            for name, value in (
                ("request_id", self.request_id),
                ("http_status", self.status),
                ("x_request_id", self.provider_request_id),
            )
            if value is not None
        ]
        return f"{self.message} ({', '.join(context)})" if context else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class InvalidParameterError(OdiqueueError, ValueError):
    """A request field is outside what the API documents; raised before anything is sent."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:60] + f"... ({len(value) if hasattr(value, '__len__') else '?'} long)"
        super().__init__(f"{field}={shown} is not allowed: {allowed}")
        self.field = field
        self.value = value
        self.allowed = allowed


class ConfigurationError(OdiqueueError, ValueError):
    """A client setting is missing or invalid (no API key, a bad base URL, ...)."""


class ClientClosedError(OdiqueueError, RuntimeError):
    """The client was used outside ``async with AsyncClient(...)``."""


class UnsafeURLError(OdiqueueError):
    """A URL would send the API key, or a request, somewhere it was not allowed to go."""


class DecodeError(OdiqueueError):
    """A reply did not have the shape any known provider uses.

    ``path`` names where in the JSON the problem is, e.g. ``$.outputs[1].url``.
    """

    def __init__(self, message: str, *, path: str = "$", **context: Any) -> None:
        super().__init__(f"malformed reply at {path}: {message}", **context)
        self.path = path


class ResponseTooLargeError(OdiqueueError):
    """A reply body or an image is larger than the configured cap."""


class OutputFileError(OdiqueueError):
    """An image could not be saved: the file exists (and overwriting was not asked), or the
    disk refused it. A paid job stays recorded in the manifest, so a rerun fetches it again.
    """


class BudgetExceededError(OdiqueueError):
    """A batch's cap (``max_images`` or ``max_cost``) was reached: this item was not
    submitted, nor will any other of the batch be. Jobs already paid for finish and are
    saved; the same batch run again with a higher cap continues where it stopped.

    ``cap`` names the setting that stopped it, ``limit`` its value.
    """

    def __init__(self, message: str, *, cap: str, limit: float, **context: Any) -> None:
        super().__init__(message, **context)
        self.cap = cap
        self.limit = limit


class OutputFileExistsError(OutputFileError, FileExistsError):
    """The file to write exists with other bytes, and overwriting was not asked: it is kept.

    Also a :class:`FileExistsError`, so code that caught that before still does.
    """


class ImageDownloadError(OdiqueueError):
    """The host of a finished job's image answered with an error status (an expired signed
    link, a CDN that has not caught up, a rate limit). It concerns that one image: unlike
    the same status from the API, a 401 or 403 here says nothing about the API key, so it
    never stops a batch. The job stays recorded as paid for, so a rerun fetches its result
    (and fresh links) again instead of paying twice.
    """


class SubmissionUncertainError(OdiqueueError):
    """The submit request was sent but no reply came back.

    The server may have created (and will bill) the job. Retrying could pay twice, so the
    library never does it silently: look the job up in your provider's dashboard, or accept
    the risk and submit again.
    """

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(
            f"{message}; the job may exist on the server and be billed, so it was not "
            "submitted again (submitting again may pay twice)",
            **context,
        )


class TransportError(OdiqueueError):
    """No HTTP reply was received."""


class ConnectError(TransportError):
    """The connection could not be made: the request provably never reached the server."""


class RequestTimeoutError(TransportError):
    """The server did not answer within the read timeout."""


class APIError(OdiqueueError):
    """The server answered with an error status.

    ``code`` is the provider's own error code when it gave one (``RATE_LIMIT_EXCEEDED``,
    ``moderation_blocked``, ``40201``...); ``body`` is the parsed reply (or its text).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        body: object = None,
        **context: Any,
    ) -> None:
        super().__init__(message, **context)
        self.code = code
        self.body = body


class InvalidRequestError(APIError):
    """400 or 422: the server rejected the request's content."""


class ContentPolicyError(InvalidRequestError):
    """The prompt was refused by the provider's content policy."""


class AuthenticationError(APIError):
    """401: the API key is missing or wrong. Set ``ODIQUEUE_API_KEY`` or pass ``api_key``."""

    fatal = True


class InsufficientCreditsError(APIError):
    """402 (or codes 40201..40208, or 403 about the balance): the account is out of credits."""

    fatal = True


class PermissionDeniedError(APIError):
    """403: the key may not use this model or endpoint."""

    fatal = True


class NotFoundError(APIError):
    """404: the job or the path does not exist (or has expired)."""


class RateLimitError(APIError):
    """429: too many requests. ``retry_after`` is the server's wait in seconds, if it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx: the server or a proxy in front of it failed."""


class JobError(OdiqueueError):
    """The job ended without images. ``error_type`` is the provider's classification."""

    def __init__(self, message: str, *, error_type: str | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.error_type = error_type

    def __str__(self) -> str:
        text = super().__str__()
        return f"{self.error_type}: {text}" if self.error_type else text


class JobFailedError(JobError):
    """The job completed with an error (INFERENCE_FAILURE, CONTENT_BLOCKED, ...)."""

    @property
    def transient(self) -> bool:
        """Whether submitting the same request again may well succeed."""
        return self.error_type in TRANSIENT_ERROR_TYPES


class JobCancelledError(JobError):
    """The job was cancelled (by this client or another)."""


class DeadlineExceededError(JobError):
    """The per-job deadline passed before the job completed."""


#: The documented error_type values of a failed job.
ERROR_TYPES = frozenset(
    {
        "INFERENCE_FAILURE",
        "INFERENCE_TIMEOUT",
        "REQUEST_INVALID",
        "CONTENT_BLOCKED",
        "CANCELED",
        "INTERNAL_SERVER_ERROR",
    }
)
#: Failures that would fail again: never resubmitted, and not paid for again on resume.
PERMANENT_ERROR_TYPES = frozenset({"CONTENT_BLOCKED", "REQUEST_INVALID"})
TRANSIENT_ERROR_TYPES = frozenset(
    {"INFERENCE_FAILURE", "INFERENCE_TIMEOUT", "INTERNAL_SERVER_ERROR"}
)

_CONTENT_POLICY_CODES = frozenset(
    {"content_blocked", "moderation_blocked", "content_policy_violation"}
)
_BY_STATUS: Mapping[int, type[APIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: InvalidRequestError,
    429: RateLimitError,
}
_MAX_SHOWN_TEXT = 200


def error_from_reply(
    status: int,
    body: bytes,
    *,
    request_id: str | None = None,
    provider_request_id: str | None = None,
    retry_after: float | None = None,
) -> APIError:
    """Turn an error reply into the matching :class:`APIError` subclass.

    Every error body shape the providers use is read for its message and code; a body that
    is not JSON (a proxy's HTML page) is shown shortened.
    """
    parsed: object
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        parsed = body.decode("utf-8", "replace")
    message, code = _message_and_code(parsed)
    if not message:
        message = f"HTTP {status}"
    cls: type[APIError] = _BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    lowered = (code or "").lower()
    if (code and code.isascii() and code.isdigit() and 40201 <= int(code[:6]) <= 40208) or (
        status == 403 and any(w in message.lower() for w in ("balance", "credit"))
    ):
        cls = InsufficientCreditsError
    elif cls is InvalidRequestError and (
        lowered in _CONTENT_POLICY_CODES or "content_blocked" in message.lower()
    ):
        cls = ContentPolicyError
    context: dict[str, Any] = {
        "code": code,
        "body": parsed,
        "request_id": request_id,
        "status": status,
        "provider_request_id": provider_request_id,
    }
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=retry_after, **context)
    return cls(message, **context)


def _message_and_code(parsed: object) -> tuple[str, str | None]:
    """Find the server's own message and code in any of the documented error shapes."""
    if isinstance(parsed, str):
        text = " ".join(parsed.split())
        if text.lstrip().startswith("<"):
            # A proxy's HTML page: its <title> is the only readable part.
            start, end = text.find("<title>"), text.find("</title>")
            if 0 <= start < end:
                text = text[start + 7 : end]
        return text[:_MAX_SHOWN_TEXT], None
    if not isinstance(parsed, Mapping):
        return "", None
    error = parsed.get("error")
    if isinstance(error, str):
        return error, _str_or_none(parsed.get("code") or parsed.get("error_type"))
    if isinstance(error, Mapping):
        message = error.get("message") or error.get("error_message") or ""
        return str(message), _str_or_none(error.get("code") or error.get("type"))
    status = parsed.get("status")
    if isinstance(status, Mapping):
        return str(status.get("message") or ""), _str_or_none(
            status.get("error_code") or status.get("code")
        )
    detail = parsed.get("detail")
    if isinstance(detail, str):
        return detail, None
    if isinstance(detail, list):
        return "; ".join(_detail_item(item) for item in detail), None
    message = parsed.get("message")
    if isinstance(message, str):
        return message, _str_or_none(parsed.get("code"))
    if isinstance(status, str):
        return status, status
    return "", None


def _detail_item(item: object) -> str:
    if not isinstance(item, Mapping):
        return str(item)
    loc = item.get("loc")
    where = ".".join(str(p) for p in loc if p != "body") if isinstance(loc, list) else ""
    msg = str(item.get("msg") or item.get("message") or "invalid")
    return f"{where}: {msg}" if where else msg


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
