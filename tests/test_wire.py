"""Reply parsing: every shape in PROTOCOL.md, tolerant of extras, precise about misfits."""

from __future__ import annotations

import logging

import pytest

from odiqueue import (
    Cancelled,
    CancelOutcome,
    DecodeError,
    Failed,
    ImageResult,
    JobStatus,
    LogLine,
    Queued,
    Running,
    Succeeded,
)
from odiqueue._wire import decode_cancel, decode_result, decode_status, guarded, structure_handle
from tests.helpers import reply

RID = "mmsu_01hxyz0000000000000000"
PNG_1X1_PREFIX = b"\x89PNG\r\n\x1a\n"


def built(request_id: str) -> tuple[str, str, str]:
    base = f"https://api.test/v1/queue/gpt_image_1/requests/{request_id}"
    return f"{base}/status", f"{base}/response", f"{base}/cancel"


def result_of(data: object) -> ImageResult:
    parsed = decode_result(data)
    assert isinstance(parsed, ImageResult)
    return parsed


def test_submit_documented_shape() -> None:
    """The documented submit reply keeps the server's URLs and queue position."""
    handle = guarded(lambda: structure_handle(reply("submit.documented"), built))
    assert handle.request_id == RID
    assert handle.status_url.endswith(f"/requests/{RID}/status")
    assert handle.status_url.startswith("https://odirouter.ai/")
    assert handle.queue_position == 0


def test_submit_terse_shape_builds_urls() -> None:
    """A reply with only request_id and status gets its URLs built from the base."""
    handle = guarded(lambda: structure_handle(reply("submit.terse"), built))
    assert (handle.status_url, handle.response_url, handle.cancel_url) == built(RID)
    assert handle.queue_position is None


def test_submit_id_alias() -> None:
    """``id`` is accepted where ``request_id`` is missing."""
    assert guarded(lambda: structure_handle({"id": "abc"}, built)).request_id == "abc"


def test_submit_without_id_is_a_decode_error() -> None:
    """A submit reply with no id at all names the missing path."""
    with pytest.raises(DecodeError) as caught:
        guarded(lambda: structure_handle({"status": "IN_QUEUE"}, built))
    assert caught.value.path == "$.request_id"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("status.in_queue", Queued(RID, 3)),
        ("status.in_progress", Running(RID)),
        ("status.completed", Succeeded(RID, 12.34)),
        ("status.failed", Failed(RID, "Task execution failed", "INFERENCE_FAILURE")),
        ("status.blocked", Failed(RID, "Content blocked by safety policy", "CONTENT_BLOCKED")),
        ("status.cancelled", Cancelled(RID, "Task was canceled")),
        ("status.error_object", Failed(RID, "InvalidParameter: size is not supported", None)),
        ("status.lowercase_progress", Running(RID, (), 0.45, "in_progress")),
    ],
)
def test_status_shapes(name: str, expected: JobStatus) -> None:
    """Each documented and observed status reply maps to its state."""
    assert decode_status(reply(name)) == expected


def test_status_fal_style_keeps_logs() -> None:
    """fal-style running replies carry their log lines."""
    status = decode_status(reply("status.fal_style"))
    assert isinstance(status, Running)
    assert [line.message for line in status.logs] == ["step 3/20"]
    assert status.logs[0].level == "INFO"


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("QUEUED", Queued),
        ("pending", Queued),
        ("RUNNING", Running),
        ("Processing", Running),
        ("FAILED", Failed),
        ("error", Failed),
        ("CANCELED", Cancelled),
        ("cancelled", Cancelled),
        ("completed", Succeeded),
    ],
)
def test_status_spellings(word: str, state: type) -> None:
    """Observed status spellings, in any letter case, map to the right state."""
    assert isinstance(decode_status({"status": word, "request_id": "r"}), state)


@pytest.mark.parametrize(
    "error",
    [{"error_message": "boom"}, "boom", {"code": "X", "message": "boom"}],
)
def test_failure_error_shapes(error: object) -> None:
    """``error`` as a string, an object with message, or error_message all give the text."""
    status = decode_status({"status": "COMPLETED", "error": error})
    assert isinstance(status, Failed)
    assert "boom" in status.error


def test_unknown_status_keeps_running_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """An unknown status value is treated as running and logged, not raised."""
    with caplog.at_level(logging.WARNING, logger="odiqueue"):
        status = decode_status({"status": "WARMING_UP", "request_id": "r"})
    assert isinstance(status, Running)
    assert status.raw_status == "WARMING_UP"
    assert "WARMING_UP" in caplog.text


def test_unknown_fields_are_ignored() -> None:
    """Fields no provider documents do not disturb parsing."""
    data = {**reply("status.in_queue"), "surprise": {"x": [1, 2]}, "eta": "soon"}
    assert decode_status(data) == Queued(RID, 3)


def test_percent_progress_is_normalised() -> None:
    """A progress of 45 (percent) reads as 0.45."""
    status = decode_status({"status": "IN_PROGRESS", "progress": 45})
    assert isinstance(status, Running)
    assert status.progress == pytest.approx(0.45)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"status": "IN_QUEUE", "queue_position": "3"}, Queued("", 3)),
        ({"status": "IN_QUEUE", "queue_position": "third"}, Queued("", None)),
        ({"status": "IN_PROGRESS", "progress": "0.5"}, Running("", (), 0.5, "IN_PROGRESS")),
        (
            {"status": "IN_PROGRESS", "logs": [{"message": "m", "level": 20}]},
            Running("", (LogLine("m", "20"),), None, "IN_PROGRESS"),
        ),
        ({"status": "COMPLETED", "error": ""}, Succeeded("")),
        ({"status": "COMPLETED", "error": {}, "error_type": ""}, Succeeded("")),
        ({"status": "COMPLETED", "error": None}, Succeeded("")),
    ],
)
def test_odd_minor_fields_never_fail_a_job(data: object, expected: JobStatus) -> None:
    """Fields that only inform the polling plan are read when they can be and dropped when
    not, and an empty error on a finished job is no error (it would be paid for again)."""
    assert decode_status(data, request_id="req-9") == expected


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ([], "$"),
        ({"request_id": "r"}, "$.status"),
        ({"status": 3}, "$.status"),
        ({"status": "IN_PROGRESS", "logs": ["x"]}, "$.logs[0]"),
        ({"status": "COMPLETED", "error": 5}, "$.error"),
    ],
)
def test_malformed_status_names_the_path(data: object, path: str) -> None:
    """A status reply that fits no shape raises DecodeError naming path and request id."""
    with pytest.raises(DecodeError) as caught:
        decode_status(data, request_id="req-9")
    assert caught.value.path == path
    assert caught.value.request_id == "req-9"
    assert "req-9" in str(caught.value)


def test_result_outputs_shape() -> None:
    """The documented outputs shape keeps order and every image field."""
    result = result_of(reply("result.outputs"))
    assert [image.url for image in result.images] == [
        "https://image.cdn2.seaart.me/2026-11-20/example/0.webp",
        "https://image.cdn2.seaart.me/2026-11-20/example/1.webp",
    ]
    first = result.images[0]
    assert (first.content_type, first.width, first.height) == ("image/webp", 1024, 1024)
    assert first.file_name == "image.webp"
    assert result.raw["metadata"]["prompt"].startswith("A clean product photo")


def test_result_images_fal_shape() -> None:
    """The fal ``images`` shape carries file_size too."""
    image = result_of(reply("result.images_fal")).images[0]
    assert image.url is not None
    assert image.url.endswith("/0.png")
    assert image.file_size == 1843201


def test_result_output_content_shape() -> None:
    """OdiRouter's provider-response ``output[].content[]`` shape gives the URL."""
    image = result_of(reply("result.output_content")).images[0]
    assert image.url is not None
    assert image.url.endswith("/0.png")


def test_result_output_content_base64() -> None:
    """``output[].content[].base64`` is read as inline data."""
    b64 = reply("result.openai_b64")["data"][0]["b64_json"]
    image = result_of({"output": [{"content": [{"base64": b64}]}]}).images[0]
    assert image.decode().startswith(PNG_1X1_PREFIX)


def test_result_openai_b64_shape() -> None:
    """OpenAI's ``data[].b64_json`` decodes to the image bytes."""
    image = result_of(reply("result.openai_b64")).images[0]
    assert image.inline
    assert image.url is None
    assert image.decode().startswith(PNG_1X1_PREFIX)


def test_result_openai_url_shape() -> None:
    """OpenAI's ``data[].url`` is read as a URL image."""
    image = result_of({"data": [{"url": "https://cdn.test/a.png"}]}).images[0]
    assert image.url == "https://cdn.test/a.png"


def test_result_data_uri() -> None:
    """A ``data:`` URI becomes inline bytes with its content type."""
    image = result_of(reply("result.data_uri")).images[0]
    assert image.content_type == "image/png"
    assert image.decode().startswith(PNG_1X1_PREFIX)


def test_result_not_ready_is_a_status() -> None:
    """A status-shaped result body means not ready, not an error."""
    assert isinstance(decode_result(reply("result.not_ready")), Running)


def test_result_with_error_is_a_failure() -> None:
    """A result body carrying an error reads as the failed status."""
    parsed = decode_result({"error": "nope", "error_type": "CONTENT_BLOCKED"})
    assert parsed == Failed("", "nope", "CONTENT_BLOCKED")


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"outputs": [{"url": 3}]}, "$.outputs[0].url"),
        ({"outputs": [{"type": "image"}]}, "$.outputs[0]"),
        ({"outputs": [{"url": "data:image/png,abc"}]}, "$.outputs[0].url"),
        ({"output": [{"content": "x"}]}, "$.output[0].content"),
        ({"images": ["x"]}, "$.images[0]"),
        ({"data": [{"url": "u", "width": "wide"}]}, "$.data[0].width"),
        ({"seed": 1}, "$"),
    ],
)
def test_malformed_result_names_the_path(data: object, path: str) -> None:
    """A result that fits no shape raises DecodeError naming the JSON path."""
    with pytest.raises(DecodeError) as caught:
        decode_result(data, request_id="r1")
    assert caught.value.path == path


@pytest.mark.parametrize(
    ("name", "outcome"),
    [
        ("cancel.requested_202", CancelOutcome.REQUESTED),
        ("cancel.already_completed_400", CancelOutcome.ALREADY_COMPLETED),
    ],
)
def test_cancel_shapes(name: str, outcome: CancelOutcome) -> None:
    """Cancel replies map to what the cancel achieved."""
    assert decode_cancel(reply(name)) is outcome
