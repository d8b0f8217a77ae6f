"""The one cattrs converter: requests to JSON, and every tolerated reply shape to models.

Providers disagree on status spellings, error shapes and where the images are in a result
(see PROTOCOL.md), so each reply model has a structure hook that knows all the shapes. A
reply that fits none raises :class:`~odiqueue.DecodeError` naming the JSON path.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, Final, NoReturn, TypeVar, cast

import cattrs
from cattrs.errors import ClassValidationError

from odiqueue._errors import ERROR_TYPES, DecodeError, SubmissionUncertainError
from odiqueue._models import (
    Cancelled,
    CancelOutcome,
    Failed,
    Image,
    ImageResult,
    JobHandle,
    JobStatus,
    LogLine,
    Queued,
    Running,
    Succeeded,
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
    "dumps",
    "guarded",
    "request_to_json",
    "result_not_ready",
    "structure_handle",
]

#: Compact JSON for request bodies and manifest lines, from one encoder made once
#: (``json.dumps`` with options builds a new encoder on every call).
dumps: Final = json.JSONEncoder(separators=(",", ":")).encode

log = logging.getLogger("odiqueue")

converter: Final = cattrs.Converter(forbid_extra_keys=False)

_QUEUED = frozenset({"IN_QUEUE", "QUEUED", "PENDING", "WAITING", "SUBMITTED"})
_RUNNING = frozenset({"IN_PROGRESS", "RUNNING", "PROCESSING", "STARTED"})
_COMPLETED = frozenset({"COMPLETED", "SUCCEEDED", "SUCCESS", "DONE", "FINISHED"})
_FAILED = frozenset({"FAILED", "ERROR", "FAILURE"})
_CANCELLED = frozenset({"CANCELED", "CANCELLED"})
_CANCEL_ERROR_TYPES = frozenset({"CANCELED", "CANCELLED"})

T = TypeVar("T")
# Unions, which cattrs takes as a type at run time but the type checker does not.
_STATUS: Final[Any] = JobStatus
_RESULT_OR_STATUS: Final[Any] = ImageResult | JobStatus


class _Shape(Exception):
    """A reply that does not fit; carries the JSON path to the offending part."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def _fail(path: str, message: str) -> NoReturn:
    raise _Shape(path, message)


def _object(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(path, f"expected a JSON object, got {type(value).__name__}")
    return value


def _opt_str(data: Mapping[str, Any], key: str, path: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    _fail(f"{path}.{key}", f"expected a string, got {type(value).__name__}")


def _opt_int(data: Mapping[str, Any], key: str, path: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value != int(value)
    ):
        _fail(f"{path}.{key}", f"expected an integer, got {value!r}"[:120])
    return int(value)


def _opt_float(data: Mapping[str, Any], key: str, path: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(f"{path}.{key}", f"expected a finite number, got {value!r}"[:120])
    return float(value)


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
    except _Shape as exc:
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
    for parameter in PARAMETERS:
        value = getattr(request, parameter.name)
        if value is not None:
            body[parameter.name] = value.value if isinstance(value, Choice) else value
    body.update(request.extra)
    return body


converter.register_unstructure_hook(ImageRequest, _unstructure_request)


# --- submit ------------------------------------------------------------------------------


def structure_handle(data: object, urls_for: Callable[[str], tuple[str, str, str]]) -> JobHandle:
    """A submit reply to a :class:`JobHandle`, building missing URLs with ``urls_for(id)``."""
    obj = _object(data, "$")
    request_id = _opt_str(obj, "request_id", "$") or _opt_str(obj, "id", "$")
    if not request_id:
        _fail("$.request_id", "the submit reply has no request_id")
    status_url, response_url, cancel_url = urls_for(request_id)
    return JobHandle(
        request_id=request_id,
        status_url=_url_or(obj.get("status_url"), status_url),
        response_url=_url_or(obj.get("response_url"), response_url),
        cancel_url=_url_or(obj.get("cancel_url"), cancel_url),
        queue_position=_lenient_int(obj.get("queue_position")),
    )


def _url_or(value: object, built: str) -> str:
    """The server's URL when it gave a usable one, else the one built from the base."""
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) else built


def _lenient_int(value: object) -> int | None:
    """A number the client can live without: read it if it makes sense, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = value.strip() if isinstance(value, str) else ""
    # isdigit() admits "²" and other digits int() refuses; only short ASCII numbers count.
    if text.isascii() and text.isdigit() and len(text) <= 12:
        return int(text)
    return None


# --- status ------------------------------------------------------------------------------


def _error_text(obj: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The failure message and error_type, from any of the error shapes providers use."""
    # Empty values mean "no error": a provider that sends "error": "" (or {}) on a finished
    # job must not have it read as failed (a rerun would pay for it again).
    error_type = _opt_str(obj, "error_type", "$") or None
    error = obj.get("error") or None
    if isinstance(error, Mapping) and not any(
        error.get(key) for key in ("message", "error_message", "code")
    ):
        error = None
    if isinstance(error, str) and not error.strip():
        error = None
    if isinstance(error, Mapping):
        message = error.get("message") or error.get("error_message")
        code = error.get("code")
        if error_type is None and isinstance(code, str) and code.upper() in ERROR_TYPES:
            # Some providers put the documented error_type in the error object's code.
            error_type = code.upper()
        text = str(message or code or "job failed")
        error = f"{code}: {text}" if code and message and str(code) not in text else text
    elif error is not None and not isinstance(error, str):
        _fail("$.error", f"expected a string or object, got {type(error).__name__}")
    provider = obj.get("provider_error")
    if error is None and isinstance(provider, Mapping):
        error = str(provider.get("message") or provider.get("code") or "job failed")
    return error, error_type


def _structure_status(data: object, _: object) -> JobStatus:
    obj = _object(data, "$")
    request_id = _opt_str(obj, "request_id", "$") or ""
    raw = obj.get("status")
    if not isinstance(raw, str):
        _fail("$.status", f"expected a status string, got {raw!r}"[:120])
    word = raw.strip().upper()
    error, error_type = _error_text(obj)
    if word in _QUEUED:
        return Queued(request_id, _minor_int(obj, "queue_position"))
    if word in _CANCELLED or (error_type or "").upper() in _CANCEL_ERROR_TYPES:
        return Cancelled(request_id, error or "cancelled")
    if word in _FAILED or (word in _COMPLETED and (error is not None or error_type is not None)):
        return Failed(request_id, error or error_type or "job failed", error_type)
    if word in _COMPLETED:
        metrics = obj.get("metrics")
        took = (
            _opt_float(metrics, "inference_time", "$.metrics")
            if isinstance(metrics, Mapping)
            else None
        )
        return Succeeded(request_id, took)
    if word not in _RUNNING:
        log.warning("unknown status %r for request %s: treating it as running", raw, request_id)
    return Running(request_id, _logs(obj.get("logs")), _progress(obj), raw)


def _logs(value: object) -> tuple[LogLine, ...]:
    if not isinstance(value, list):
        return ()
    lines = []
    for index, item in enumerate(value):
        path = f"$.logs[{index}]"
        entry = _object(item, path)
        message = entry.get("message")
        lines.append(
            LogLine(
                message="" if message is None else str(message),
                level=None if entry.get("level") is None else str(entry["level"]),
                timestamp=None if entry.get("timestamp") is None else str(entry["timestamp"]),
            )
        )
    return tuple(lines)


def _minor_int(obj: Mapping[str, Any], key: str) -> int | None:
    """A field that only informs the polling plan: an odd value ("3", 2.5, "soon") is
    dropped with a debug line rather than failing a job that is still running."""
    value = _minor_float(obj, key)
    return None if value is None else int(value)


def _minor_float(obj: Mapping[str, Any], key: str) -> float | None:
    raw = obj.get(key)
    value = raw
    if isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        if raw is not None:
            log.debug(
                "status of request %s: ignoring %s=%r in the reply",
                obj.get("request_id") or "(unnamed)",
                key,
                raw,
            )
        return None
    return value


def _progress(obj: Mapping[str, Any]) -> float | None:
    value = _minor_float(obj, "progress")
    if value is None:
        return None
    # Some servers report percent: anything above 1 is read as 0..100.
    return min(max(value / 100 if value > 1 else value, 0.0), 1.0)


# --- result ------------------------------------------------------------------------------


def _structure_result(data: object, _: object) -> ImageResult | JobStatus:
    """A result reply: the images, or the status it still has (not ready, failed)."""
    obj = _object(data, "$")
    request_id = _opt_str(obj, "request_id", "$") or ""
    images = _find_images(obj)
    if images is not None:
        return ImageResult(request_id, images, obj)
    if "status" in obj or "error" in obj:
        if "status" not in obj:
            obj = {**obj, "status": "COMPLETED"}
        status = _structure_status(obj, None)
        if not isinstance(status, Succeeded):
            return status
    _fail("$", "no images in any known result shape (outputs, output, images, data)")


def _find_images(obj: Mapping[str, Any]) -> tuple[Image, ...] | None:
    if isinstance(obj.get("outputs"), list):
        return tuple(_image(item, f"$.outputs[{i}]") for i, item in enumerate(obj["outputs"]))
    if isinstance(obj.get("output"), list):
        found: list[Image] = []
        for i, part in enumerate(obj["output"]):
            content = _object(part, f"$.output[{i}]").get("content")
            if not isinstance(content, list):
                _fail(f"$.output[{i}].content", "expected a list of images")
            found.extend(_image(c, f"$.output[{i}].content[{j}]") for j, c in enumerate(content))
        return tuple(found)
    if isinstance(obj.get("images"), list):
        return tuple(_image(item, f"$.images[{i}]") for i, item in enumerate(obj["images"]))
    if isinstance(obj.get("data"), list):
        return tuple(_image(item, f"$.data[{i}]") for i, item in enumerate(obj["data"]))
    return None


def _image(value: object, path: str) -> Image:
    item = _object(value, path)
    url = _opt_str(item, "url", path)
    b64 = _opt_str(item, "b64_json", path) or _opt_str(item, "base64", path)
    content_type = _opt_str(item, "content_type", path) or _opt_str(item, "mime_type", path)
    if url and url[:5].lower() == "data:":
        header, sep, payload = url.partition(",")
        if not sep or ";base64" not in header.lower():
            _fail(f"{path}.url", "a data: URI must be base64-encoded")
        content_type = content_type or header[5:].split(";", 1)[0] or None
        url, b64 = None, payload
    if not url and not b64:
        _fail(path, "an image needs a url or base64 data")
    return Image(
        url=url or None,
        b64=b64,
        content_type=content_type,
        width=_opt_int(item, "width", path),
        height=_opt_int(item, "height", path),
        file_name=_opt_str(item, "file_name", path),
        file_size=_opt_int(item, "file_size", path),
    )


# --- cancel ------------------------------------------------------------------------------


def _structure_cancel(data: object, _: object) -> CancelOutcome:
    obj = _object(data, "$")
    raw = obj.get("status")
    if isinstance(raw, str) and raw.strip().upper() == CancelOutcome.ALREADY_COMPLETED.value:
        return CancelOutcome.ALREADY_COMPLETED
    return CancelOutcome.REQUESTED


converter.register_structure_hook(_STATUS, _structure_status)
converter.register_structure_hook(_RESULT_OR_STATUS, _structure_result)
converter.register_structure_hook(CancelOutcome, _structure_cancel)
