"""Properties over arbitrary input: reply parsers, error mapping, request ranges, file names.

Profiles: ``ci`` (the default: derandomized, modest, no deadline) and ``long`` (many more
examples, random), chosen with ``HYPOTHESIS_PROFILE=long``, e.g.
``HYPOTHESIS_PROFILE=long python3 -m pytest tests/test_properties.py -o timeout=0`` (a few
minutes; the per-test timeout is lifted because some properties then run past it).
"""

from __future__ import annotations

import json
import os
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from odiqueue import (
    APIError,
    Background,
    Cancelled,
    CancelOutcome,
    DecodeError,
    Failed,
    ImageRequest,
    ImageResult,
    InvalidParameterError,
    JobHandle,
    Moderation,
    OutputFormat,
    Quality,
    Queued,
    Running,
    Size,
    Succeeded,
)
from odiqueue._naming import DEFAULT_TEMPLATE, image_path, literal_template, safe_component
from odiqueue._replies import error_from_reply
from odiqueue._wire import decode_cancel, decode_result, decode_status, guarded, structure_handle

DATA = Path(__file__).parent / "data"

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=5000,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: Applied to each test here (not loaded globally, so other modules keep their own settings).
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# --- JSON, as json.loads can hand it to a parser ------------------------------------------------

#: Names the parsers look for, so arbitrary objects often hit the interesting branches.
FIELDS = [
    "status",
    "request_id",
    "id",
    "queue_position",
    "status_url",
    "response_url",
    "cancel_url",
    "error",
    "error_type",
    "error_message",
    "provider_error",
    "message",
    "code",
    "type",
    "detail",
    "loc",
    "msg",
    "logs",
    "level",
    "timestamp",
    "progress",
    "metrics",
    "inference_time",
    "outputs",
    "output",
    "content",
    "images",
    "data",
    "url",
    "b64_json",
    "base64",
    "content_type",
    "mime_type",
    "width",
    "height",
    "file_name",
    "file_size",
    "error_code",
]
WORDS = [
    "IN_QUEUE",
    "in_progress",
    "COMPLETED",
    "completed",
    "FAILED",
    "CANCELED",
    "Cancelled",
    "PENDING",
    "ALREADY_COMPLETED",
    "CANCELLATION_REQUESTED",
    "CONTENT_BLOCKED",
    "INFERENCE_FAILURE",
    "moderation_blocked",
    "40201",
    "https://cdn.example/0.png",
    "http://127.0.0.1:1/x",
    "data:image/png;base64,iVBORw0KGgo=",
    "data:image/png,raw",
    "image/webp",
    "<html><title>502</title></html>",
    "Request is still in progress",
    "",
]
# Every number json.loads can produce: 1e999 parses to inf, and Python also reads NaN.
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(WORDS)
)
keys = st.sampled_from(FIELDS) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6),
    max_leaves=25,
)


def _load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


REPLIES = {path.name: _load(path.name) for path in sorted(DATA.glob("*.json"))}


@st.composite
def mutated(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """``value`` with a few random edits: replaced, deleted, added or retyped parts."""
    action = draw(st.sampled_from(["keep", "keep", "replace", "descend", "descend"]))
    if action == "replace" or (action == "descend" and not isinstance(value, (dict, list))):
        return draw(json_values)
    if action == "keep" or depth > 6:
        return value
    if isinstance(value, dict):
        result = dict(value)
        for key in draw(st.lists(st.sampled_from(sorted(value)), max_size=3)) if value else []:
            edit = draw(st.sampled_from(["mutate", "mutate", "delete"]))
            if edit == "delete":
                result.pop(key, None)
            else:
                result[key] = draw(mutated(value[key], depth + 1))
        for key, extra in draw(st.lists(st.tuples(keys, json_values), max_size=2)):
            result[key] = extra
        return result
    result_list = [draw(mutated(item, depth + 1)) for item in value]
    if result_list and draw(st.booleans()):
        del result_list[draw(st.integers(0, len(result_list) - 1))]
    if draw(st.booleans()):
        result_list.append(draw(json_values))
    return result_list


replies = st.sampled_from(sorted(REPLIES)).flatmap(lambda name: mutated(REPLIES[name]))
any_reply = json_values | replies


def _urls_for(request_id: str) -> tuple[str, str, str]:
    base = f"https://api.test/model/v1/queue/gpt_image_1/requests/{request_id}"
    return f"{base}/status", f"{base}/response", f"{base}/cancel"


# Inputs that once escaped as something other than DecodeError (kept as fixed examples).
INF_POSITION = json.loads('{"status": "IN_QUEUE", "queue_position": 1e999}')
NAN_POSITION = json.loads('{"status": "IN_QUEUE", "queue_position": NaN}')
INF_WIDTH = json.loads('{"outputs": [{"url": "https://cdn.test/0.png", "width": 1e999}]}')
NUMBER_LIKE = "\u00b2"  # "²": str.isdigit() says yes, int() says no


@PROFILE
@given(any_reply)
@example(INF_POSITION)
@example(NAN_POSITION)
def test_status_parser_raises_only_decode_errors(data: Any) -> None:
    """Any JSON given as a status reply becomes a status or a DecodeError, nothing else."""
    try:
        status = decode_status(data)
    except DecodeError:
        return
    assert isinstance(status, (Queued, Running, Succeeded, Failed, Cancelled))


@PROFILE
@given(any_reply)
@example(INF_WIDTH)
@example(INF_POSITION)
def test_result_parser_raises_only_decode_errors(data: Any) -> None:
    """Any JSON given as a result reply becomes images, an unfinished status, or a DecodeError."""
    try:
        parsed = decode_result(data)
    except DecodeError:
        return
    if isinstance(parsed, ImageResult):
        assert all(image.url or image.b64 is not None for image in parsed.images)
    else:
        assert isinstance(parsed, (Queued, Running, Failed, Cancelled))


@PROFILE
@given(any_reply)
def test_cancel_parser_raises_only_decode_errors(data: Any) -> None:
    """Any JSON given as a cancel reply becomes a CancelOutcome or a DecodeError."""
    try:
        outcome = decode_cancel(data)
    except DecodeError:
        return
    assert isinstance(outcome, CancelOutcome)


@PROFILE
@given(any_reply)
@example({"request_id": "mmsu_1", "queue_position": NUMBER_LIKE})
@example({"request_id": "mmsu_1", "queue_position": "9" * 5000})
def test_submit_parser_raises_only_decode_errors(data: Any) -> None:
    """Any JSON given as a submit reply becomes a handle with absolute URLs, or a DecodeError."""
    try:
        handle = guarded(lambda: structure_handle(data, _urls_for))
    except DecodeError:
        return
    assert isinstance(handle, JobHandle)
    assert handle.request_id
    for url in (handle.status_url, handle.response_url, handle.cancel_url):
        assert url.startswith(("http://", "https://"))


bodies = (
    json_values.map(lambda v: json.dumps(v).encode())
    | replies.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=64)
    | st.text(max_size=64).map(str.encode)
    | st.just((DATA / "error.proxy_502.html").read_bytes())
)


@PROFILE
@given(st.integers(100, 599), bodies)
@example(400, b'{"error": {"code": "\\u00b2", "message": "no"}}')
@example(500, b"[" * 100_000)
def test_error_mapping_always_returns_an_api_error(status: int, body: bytes) -> None:
    """Any error body with any status maps onto an APIError keeping the status, never raises."""
    error = error_from_reply(status, body, provider_request_id="gw_1")
    assert isinstance(error, APIError)
    assert error.status == status
    assert error.provider_request_id == "gw_1"
    assert isinstance(error.message, str)
    assert error.message


# --- ImageRequest accepts exactly the documented ranges ------------------------------------------


def _enum_values(choices: type[Any]) -> st.SearchStrategy[Any]:
    values = [member.value for member in choices]
    spelled = st.builds(
        lambda v, case, pad: pad + case(v) + pad,
        st.sampled_from(values),
        st.sampled_from([str.lower, str.upper, str.title]),
        st.sampled_from(["", " ", "\t"]),
    )
    near_miss = st.sampled_from(values).map(lambda v: v + "s") | st.sampled_from(values).map(
        lambda v: v.replace("x", "X ").replace("o", "0")
    )
    return (
        st.none()
        | st.sampled_from(list(choices))
        | spelled
        | near_miss
        | st.text(max_size=8)
        | st.integers(-2, 2)
        | st.booleans()
    )


ints_and_others = (
    st.integers(-3, 12) | st.integers() | st.booleans() | st.floats() | st.text(max_size=3)
)
request_fields = st.fixed_dictionaries(
    {
        "prompt": st.text(max_size=30)
        | st.integers(31_995, 32_005).map(lambda n: "p" * n)
        | st.none()
        | st.integers(),
    },
    optional={
        "n": st.none() | ints_and_others,
        "size": _enum_values(Size),
        "quality": _enum_values(Quality),
        "background": _enum_values(Background),
        "output_format": _enum_values(OutputFormat),
        "output_compression": st.none() | st.integers(-3, 103) | ints_and_others,
        "moderation": _enum_values(Moderation),
        "user": st.none() | st.text(max_size=8) | st.integers(),
    },
)


def _is_int_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _enum_ok(value: object, choices: type[Any]) -> bool:
    if value is None or isinstance(value, choices):
        return True
    return isinstance(value, str) and value.strip().lower() in {m.value for m in choices}


def _expected_problems(fields: dict[str, Any]) -> set[str]:
    """The fields the documentation says are out of range (empty: the request is valid)."""
    bad = set()
    prompt = fields["prompt"]
    if not (isinstance(prompt, str) and 1 <= len(prompt) <= 32_000):
        bad.add("prompt")
    if fields.get("n") is not None and not _is_int_in(fields["n"], 1, 10):
        bad.add("n")
    for name, choices in (
        ("size", Size),
        ("quality", Quality),
        ("background", Background),
        ("output_format", OutputFormat),
        ("moderation", Moderation),
    ):
        if not _enum_ok(fields.get(name), choices):
            bad.add(name)
    compression = fields.get("output_compression")
    if compression is not None and not _is_int_in(compression, 0, 100):
        bad.add("output_compression")
    if fields.get("user") is not None and not isinstance(fields["user"], str):
        bad.add("user")
    if bad:
        return bad
    # Cross-field rules, checked once each field is fine on its own.
    fmt = fields.get("output_format")
    fmt = "png" if fmt is None else str(fmt).strip().lower()
    if compression is not None and fmt == "png":
        bad.add("output_compression")
    background = fields.get("background")
    transparent = background is not None and str(background).strip().lower() == "transparent"
    if transparent and fmt == "jpeg":
        bad.add("background")
    return bad


@PROFILE
@given(request_fields)
def test_image_request_accepts_exactly_the_documented_ranges(fields: dict[str, Any]) -> None:
    """Documented values build a request; anything else raises InvalidParameterError naming it."""
    problems = _expected_problems(fields)
    fields = dict(fields)
    prompt = fields.pop("prompt")
    if problems:
        with pytest.raises(InvalidParameterError) as caught:
            ImageRequest(prompt, **fields)
        assert caught.value.field in problems
        assert isinstance(caught.value, ValueError)
        return
    request = ImageRequest(prompt, **fields)
    assert request.prompt == prompt
    assert request.count == (fields.get("n") or 1)
    for name in ("size", "quality", "background", "output_format", "moderation"):
        given_value = fields.get(name)
        expected = None if given_value is None else str(given_value).strip().lower()
        assert getattr(request, name) == expected


# --- file names ----------------------------------------------------------------------------------

OUT = Path("/srv/batch/out")  # pure path arithmetic: nothing is created
FIELD_NAMES = ("key", "index", "request_id", "ext")
literal = st.text(max_size=12).map(lambda s: s.replace("{", "{{").replace("}", "}}"))
fields_in_template = st.sampled_from([f"{{{name}}}" for name in FIELD_NAMES])


@st.composite
def templates(draw: st.DrawFn) -> str:
    """A valid name template: literal text and fields, naming the key or the request id."""
    parts = draw(st.lists(literal | fields_in_template, max_size=6))
    template = "".join(parts)
    if "{key}" not in template and "{request_id}" not in template:
        template += draw(st.sampled_from(["{key}", "{request_id}"]))
    return template


any_template = (
    st.just(DEFAULT_TEMPLATE)
    | st.just("{request_id}.{ext}")
    | templates()
    | st.text(max_size=40).map(literal_template)
)
names = (
    st.text()
    | st.text(alphabet=string.printable)
    | st.sampled_from(
        [
            ".",
            "..",
            "...",
            "-",
            " ",
            "CON",
            "nul.png",
            "../../etc/passwd",
            "a/b\\c",
            "\x00",
            ".hidden",
        ]
    )
)


def _check_name(path: Path) -> None:
    assert path.parent == OUT
    name = path.name
    assert name
    assert name not in (".", "..")
    assert not name.startswith(".")
    assert "/" not in name
    assert "\x00" not in name
    assert len(name.encode("utf-8")) <= 200


@PROFILE
@given(
    template=any_template,
    key=names,
    request_id=names,
    index=st.integers(min_value=0, max_value=10**6),
    ext=names,
    count=st.integers(1, 10),
)
def test_any_key_and_field_values_give_a_safe_file_name(
    template: str, key: str, request_id: str, index: int, ext: str, count: int
) -> None:
    """Whatever the key and field values, the file is named inside out_dir, visible, <=200 B."""
    path = image_path(
        OUT,
        template,
        key=key,
        index=index,
        request_id=request_id,
        ext=ext,
        count=count,
    )
    _check_name(path)


@PROFILE
@given(names)
def test_safe_component_is_one_visible_component(text: str) -> None:
    """safe_component turns any text into one non-empty, non-hidden name of at most 200 bytes."""
    _check_name(OUT / safe_component(text))


@PROFILE
@given(template=any_template, key=names, request_id=names, count=st.integers(2, 10))
@example(template="{key}{{index}}.{ext}", key="k", request_id="r", count=2)
@example(template=literal_template("shot{index}"), key="k", request_id="r", count=2)
def test_images_of_one_job_never_share_a_name(
    template: str, key: str, request_id: str, count: int
) -> None:
    """Each image of a multi-image job gets its own file name, whatever the template."""
    paths = {
        image_path(
            OUT,
            template,
            key=key,
            index=index,
            request_id=request_id,
            ext="png",
            count=count,
        )
        for index in range(count)
    }
    assert len(paths) == count
