"""Error replies map onto the exception tree by meaning, keeping the server's own words."""

from __future__ import annotations

from pathlib import Path

import pytest

from odiqueue import (
    APIError,
    AuthenticationError,
    ContentPolicyError,
    InsufficientCreditsError,
    InvalidRequestError,
    JobFailedError,
    NotFoundError,
    OdiqueueError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from odiqueue._replies import error_from_reply

DATA = Path(__file__).parent / "data"


def body(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.mark.parametrize(
    ("status", "name", "cls", "message", "code"),
    [
        (
            401,
            "error.unauthorized_401.json",
            AuthenticationError,
            "token is required",
            "UNAUTHORIZED",
        ),
        (
            402,
            "error.insufficient_credits_402.json",
            InsufficientCreditsError,
            "Insufficient",
            "40201",
        ),
        (
            403,
            "error.simple_string_403.json",
            InsufficientCreditsError,
            "insufficient balance",
            None,
        ),
        (
            400,
            "error.openai_style_400.json",
            ContentPolicyError,
            "safety system",
            "moderation_blocked",
        ),
        (404, "error.detail_string_404.json", NotFoundError, "App not found", None),
        (422, "error.detail_list_422.json", InvalidRequestError, "n: Input should be less", None),
        (
            429,
            "error.rate_limited_429.json",
            RateLimitError,
            "Rate limit exceeded",
            "RATE_LIMIT_EXCEEDED",
        ),
        (502, "error.proxy_502.html", ServerError, "502 Bad Gateway", None),
    ],
)
def test_error_bodies_map_by_meaning(
    status: int, name: str, cls: type[APIError], message: str, code: str | None
) -> None:
    """Each documented error body becomes its class, with the server's message and code."""
    error = error_from_reply(status, body(name), request_id="r1", provider_request_id="gw_1")
    assert type(error) is cls
    assert message in error.message
    assert error.code == code
    assert (error.status, error.request_id, error.provider_request_id) == (status, "r1", "gw_1")
    assert "gw_1" in str(error)


def test_credit_codes_win_over_status() -> None:
    """An error code 40201..40208 means insufficient credits whatever the HTTP status."""
    raw = b'{"status":{"code":400,"message":"no money","error_code":40205},"data":null}'
    assert isinstance(error_from_reply(400, raw), InsufficientCreditsError)


def test_plain_403_is_permission() -> None:
    """A 403 that does not mention the balance is a permission error."""
    assert type(error_from_reply(403, b'{"error":"model not allowed"}')) is PermissionDeniedError


def test_content_blocked_code_is_content_policy() -> None:
    """CONTENT_BLOCKED in a 400 or 422 is a content-policy error (an invalid request too)."""
    error = error_from_reply(422, b'{"error":{"code":"CONTENT_BLOCKED","message":"no"}}')
    assert isinstance(error, ContentPolicyError)
    assert isinstance(error, InvalidRequestError)


def test_rate_limit_carries_retry_after() -> None:
    """429 keeps the Retry-After the transport read."""
    error = error_from_reply(429, body("error.rate_limited_429.json"), retry_after=2.5)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 2.5


@pytest.mark.parametrize("status", [500, 503, 504])
def test_5xx_is_server_error(status: int) -> None:
    """Any 5xx is a server error, even with an empty body."""
    error = error_from_reply(status, b"")
    assert isinstance(error, ServerError)
    assert error.message == f"HTTP {status}"


def test_fatal_errors_are_marked() -> None:
    """Authentication, credits and permission stop a batch; the rest do not."""
    assert AuthenticationError.fatal
    assert InsufficientCreditsError.fatal
    assert PermissionDeniedError.fatal
    assert not RateLimitError.fatal
    assert not ServerError.fatal
    assert not NotFoundError.fatal


def test_transient_job_failures() -> None:
    """Inference failures are worth resubmitting; blocked content is not."""
    assert JobFailedError("x", error_type="INFERENCE_TIMEOUT").transient
    assert not JobFailedError("x", error_type="CONTENT_BLOCKED").transient
    assert not JobFailedError("x", error_type="REQUEST_INVALID").transient


def test_every_error_has_one_root() -> None:
    """Every mapped error is an OdiqueueError."""
    assert isinstance(error_from_reply(418, b"teapot"), OdiqueueError)
