"""The exception tree (``_replies.error_from_reply`` maps HTTP error replies onto it).

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
own words). ``fix``, when set, is the setting that would resolve the error, as data (a
:class:`Fix`), so that each interface names it in its own words: the message says the
Python parameter, the command line its flag. ``fatal`` is true for errors that no other
job of the same key can escape (authentication, credits, permission): a batch stops
submitting when it meets one.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import attrs

__all__ = [
    "APIError",
    "AuthenticationError",
    "ClientClosedError",
    "ConfigurationError",
    "ConnectError",
    "ContentPolicyError",
    "DeadlineExceededError",
    "DecodeError",
    "Fix",
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
]


@attrs.frozen
class Fix:
    """A setting that would resolve an error: ``parameter`` set to ``value``.

    ``advice`` is the sentence that recommends it, with ``{setting}`` where the setting is
    named: ``str(fix)`` names it as Python does (``overwrite=True``), and the command line
    spells the same fix as its flag (``--overwrite``).
    """

    parameter: Literal["overwrite", "redo"]
    value: bool | str | tuple[str, ...]
    advice: str = "pass {setting}"

    def __str__(self) -> str:
        return self.advice.format(setting=self.setting)

    @property
    def setting(self) -> str:
        """The setting as a Python keyword argument, e.g. ``redo='changed'``."""
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return f"{self.parameter}={value!r}"


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
        fix: Fix | None = None,
    ) -> None:
        #: The problem alone, without the advice of ``fix``.
        self.problem = message
        if fix is not None:
            message = f"{message}: {fix}"
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.status = status
        self.provider_request_id = provider_request_id
        self.fix = fix

    def told(self, setting: str) -> str:
        """The error in full, with its fix named as ``setting`` (e.g. a CLI flag) instead of
        the Python parameter; just ``str(self)`` when it has no fix."""
        if self.fix is None:
            return str(self)
        return self._with_context(f"{self.problem}: {self.fix.advice.format(setting=setting)}")

    def __str__(self) -> str:
        return self._with_context(self.message)

    def _with_context(self, message: str) -> str:
        context = [
            f"{name}={value}"
            for name, value in (
                ("request_id", self.request_id),
                ("http_status", self.status),
                ("x_request_id", self.provider_request_id),
            )
            if value is not None
        ]
        return f"{message} ({', '.join(context)})" if context else message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class InvalidParameterError(OdiqueueError, ValueError):
    """A request field is outside what the API documents; raised before anything is sent."""

    def __init__(
        self, field: str, value: object, allowed: str, *, model: str | None = None
    ) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:60] + f"... ({len(value) if hasattr(value, '__len__') else '?'} long)"
        where = f" for model {model}" if model else ""
        super().__init__(f"{field}={shown} is not allowed{where}: {allowed}")
        self.field = field
        self.value = value
        self.allowed = allowed
        #: The model whose rule it breaks (None for a rule every model shares).
        self.model = model


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
