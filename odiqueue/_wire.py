"""The one cattrs converter: requests to JSON, and every tolerated reply shape to models.

Providers disagree on status spellings, error shapes and where the images are in a result
(see PROTOCOL.md), so each reply model has a structure hook that knows all the shapes. A
reply that fits none raises :class:`~odiqueue.DecodeError` naming the JSON path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar, cast

import cattrs
from cattrs.errors import ClassValidationError

from odiqueue._errors import DecodeError, SubmissionUncertainError
from odiqueue._imageref import ImageRef
from odiqueue._models import (
    CancelOutcome,
    ImageResult,
    JobHandle,
    JobStatus,
)
from odiqueue._replies import (
    Shape,
    _fail,
    _object,
    _opt_str,
    structure_cancel,
    structure_handle,
    structure_result,
    structure_status,
    unknown_status,
)
from odiqueue._request import PARAMETERS, Choice, ImageRequest

__all__ = [
    "cancel_came_late",
    "canonical_json",
    "converter",
    "decode_cancel",
    "decode_result",
    "decode_status",
    "decode_submit",
    "decode_upload",
    "dumps",
    "guarded",
    "request_to_json",
    "result_not_ready",
    "structure_handle",
    "unknown_status",
]

#: Compact JSON for request bodies and manifest lines, from one encoder made once
#: (``json.dumps`` with options builds a new encoder on every call).
dumps: Final = json.JSONEncoder(separators=(",", ":")).encode

log = logging.getLogger("odiqueue")

converter: Final = cattrs.Converter(forbid_extra_keys=False)

T = TypeVar("T")
# Unions, which cattrs takes as a type at run time but the type checker does not.
_STATUS: Final[Any] = JobStatus
_RESULT_OR_STATUS: Final[Any] = ImageResult | JobStatus


def decode_submit(
    data: object,
    urls_for: Callable[[str], tuple[str, str, str]],
    provider_request_id: str | None,
) -> JobHandle:
    """A submit reply as the new job's handle.

    A paid job exists once the server accepted the submit, so an unreadable reply raises
    :class:`SubmissionUncertainError` (never a plain decode error that reads as "not sent").
    """
    try:
        return guarded(lambda: structure_handle(data, urls_for))
    except DecodeError as exc:
        raise SubmissionUncertainError(
            f"the server accepted the job but its reply is unreadable ({exc.message})",
            provider_request_id=provider_request_id,
        ) from exc


def decode_status(data: object, *, request_id: str | None = None) -> JobStatus:
    """A status reply as a :class:`JobStatus`; any misfit becomes a :class:`DecodeError`.

    ``request_id`` names the job in that error (the status keeps the id the reply gave).
    """
    status = guarded(lambda: converter.structure(data, _STATUS), request_id=request_id)
    return cast("JobStatus", status)


def decode_result(data: object, *, request_id: str | None = None) -> ImageResult | JobStatus:
    """A response-URL reply: the images, or the status of a job not finished yet."""
    parsed = guarded(lambda: converter.structure(data, _RESULT_OR_STATUS), request_id=request_id)
    return cast("ImageResult | JobStatus", parsed)


def decode_cancel(data: object, *, request_id: str | None = None) -> CancelOutcome:
    """A cancel reply as the :class:`CancelOutcome` it reports."""
    return guarded(lambda: converter.structure(data, CancelOutcome), request_id=request_id)


def result_not_ready(status: int, body: bytes) -> bool:
    """Whether an error reply of the response URL only says the job is still running."""
    return status == 400 and b"still in progress" in body.lower()


def cancel_came_late(status: int, body: bytes) -> bool:
    """Whether an error reply of the cancel URL says the job had already completed."""
    return status == 400 and b"already_completed" in body.lower()


def guarded(parse: Callable[[], T], *, request_id: str | None = None) -> T:
    """Run ``parse``, turning any shape misfit into a :class:`DecodeError` with its path."""
    try:
        return parse()
    except Shape as exc:
        raise DecodeError(str(exc), path=exc.path, request_id=request_id) from None
    except ClassValidationError as exc:
        detail = "; ".join(cattrs.transform_error(exc, path="$"))
        raise DecodeError(detail, path="$", request_id=request_id) from None


def canonical_json(value: Mapping[str, Any]) -> str:
    """One text per JSON value whatever its key order: how requests are compared and keyed.

    Item keys are digests of this text, so its form never changes (a rerun must find them).
    """
    return json.dumps(value, sort_keys=True, default=str)


def request_to_json(request: ImageRequest) -> dict[str, Any]:
    """The submit body: only the fields the caller set, then ``extra``."""
    return converter.unstructure(request)  # type: ignore[no-any-return]


def _unstructure_request(request: ImageRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": request.prompt}
    for parameter in _WIRE_PARAMETERS:
        value = getattr(request, parameter.name)
        if value is None:
            continue
        if isinstance(value, Choice):
            value = value.value
        elif isinstance(value, ImageRef):
            # A local file is shown as its path here; ``_edits`` puts its data in the
            # body when the job is submitted, and its digest in the manifest.
            value = str(value)
        elif isinstance(value, tuple):
            value = [str(item) for item in value]
        body[parameter.name] = value
    body.update(request.extra)
    return body


_WIRE_PARAMETERS: Final = tuple(p for p in PARAMETERS if p.wire)

converter.register_unstructure_hook(ImageRequest, _unstructure_request)


def decode_upload(data: object) -> str:
    """The URL an upload endpoint answered with: ``{"url": ...}`` or ``{"data": {"url": ...}}``."""

    def parse() -> str:
        obj = _object(data, "$")
        inner = obj.get("data")
        if isinstance(inner, Mapping) and isinstance(inner.get("url"), str):
            url: str = inner["url"]
            path = "$.data.url"
        else:
            url = _opt_str(obj, "url", "$") or ""
            path = "$.url"
        if not url.startswith(("http://", "https://")):
            _fail(path, "the upload reply has no http(s) url")
        return url

    return guarded(parse)


converter.register_structure_hook(_STATUS, structure_status)
converter.register_structure_hook(_RESULT_OR_STATUS, structure_result)
converter.register_structure_hook(CancelOutcome, structure_cancel)
