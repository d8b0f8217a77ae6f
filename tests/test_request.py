"""ImageRequest: every documented field, range and default, checked before anything is sent."""

from __future__ import annotations

import pytest

from odiqueue import (
    Background,
    ImageRequest,
    InvalidParameterError,
    OutputFormat,
    Size,
)
from odiqueue._wire import request_to_json


def test_only_set_fields_are_sent() -> None:
    """Fields left unset are omitted so the server applies its own defaults."""
    assert request_to_json(ImageRequest("apple")) == {"prompt": "apple"}


def test_every_documented_field_is_sent_as_given() -> None:
    """Each documented field reaches the wire under its documented name and value."""
    request = ImageRequest(
        "apple",
        n=3,
        size="1536x1024",
        quality="high",
        background="opaque",
        output_format="jpeg",
        output_compression=90,
        moderation="low",
        user="shop-42",
    )
    assert request_to_json(request) == {
        "prompt": "apple",
        "n": 3,
        "size": "1536x1024",
        "quality": "high",
        "background": "opaque",
        "output_format": "jpeg",
        "output_compression": 90,
        "moderation": "low",
        "user": "shop-42",
    }


def test_extra_fields_pass_through() -> None:
    """Fields the API adds later travel through ``extra`` untouched."""
    body = request_to_json(ImageRequest("apple", extra={"seed": 7, "style": {"a": 1}}))
    assert body == {"prompt": "apple", "seed": 7, "style": {"a": 1}}


def test_enums_accept_strings_and_members() -> None:
    """String values are converted to the documented enums, case-insensitively."""
    request = ImageRequest("x", size=Size.SQUARE, output_format="WEBP", background="Transparent")
    assert request.size is Size.SQUARE
    assert request.output_format is OutputFormat.WEBP
    assert request.background is Background.TRANSPARENT


def test_documented_defaults_are_known() -> None:
    """The effective format and count follow the documented defaults when unset."""
    request = ImageRequest("x")
    assert request.format is OutputFormat.PNG
    assert request.count == 1
    assert ImageRequest.DEFAULTS["output_compression"] == 100


@pytest.mark.parametrize("length", [1, 32000])
def test_prompt_length_bounds_are_accepted(length: int) -> None:
    """Prompts of 1 and of 32000 characters are valid."""
    assert len(ImageRequest("p" * length).prompt) == length


@pytest.mark.parametrize(
    ("kwargs", "field", "hint"),
    [
        ({"prompt": ""}, "prompt", "1 to 32000 characters"),
        ({"prompt": "p" * 32001}, "prompt", "1 to 32000 characters"),
        ({"prompt": 5}, "prompt", "string"),
        ({"n": 0}, "n", "from 1 to 10"),
        ({"n": 11}, "n", "from 1 to 10"),
        ({"n": True}, "n", "integer"),
        ({"n": 2.0}, "n", "integer"),
        ({"size": "512x512"}, "size", "1024x1024, 1024x1536, 1536x1024, auto"),
        ({"quality": "ultra"}, "quality", "low, medium, high, auto"),
        ({"background": "white"}, "background", "transparent, opaque, auto"),
        ({"output_format": "gif"}, "output_format", "png, jpeg, webp"),
        ({"moderation": "off"}, "moderation", "auto, low"),
        ({"output_format": "jpeg", "output_compression": -1}, "output_compression", "0 to 100"),
        ({"output_format": "webp", "output_compression": 101}, "output_compression", "0 to 100"),
        ({"output_compression": 50}, "output_compression", "jpeg or webp"),
        ({"output_format": "png", "output_compression": 50}, "output_compression", "jpeg or webp"),
        ({"background": "transparent", "output_format": "jpeg"}, "background", "png or webp"),
        ({"user": 42}, "user", "string"),
        ({"extra": {"n": 2}}, "extra['n']", "own argument"),
        ({"extra": {"x": object()}}, "extra['x']", "JSON value"),
    ],
)
def test_invalid_values_name_field_value_and_what_is_allowed(
    kwargs: dict[str, object], field: str, hint: str
) -> None:
    """Each out-of-range value raises an error naming the field, the value and the rule."""
    args = {"prompt": "apple", **kwargs}
    with pytest.raises(InvalidParameterError) as caught:
        ImageRequest(**args)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}=")
    assert hint in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_compression_allowed_with_lossy_formats(fmt: str) -> None:
    """output_compression 0..100 is accepted with jpeg and webp."""
    assert ImageRequest("x", output_format=fmt, output_compression=0).output_compression == 0


@pytest.mark.parametrize("fmt", [None, "png", "webp"])
def test_transparent_background_with_alpha_formats(fmt: str | None) -> None:
    """A transparent background is accepted with png (the default) and webp."""
    assert (
        ImageRequest("x", background="transparent", output_format=fmt).background == "transparent"
    )


def test_requests_are_frozen_and_comparable() -> None:
    """Requests are immutable values: equal fields mean equal requests."""
    a = ImageRequest("x", n=2, extra={"seed": 1})
    assert a == ImageRequest("x", n=2, extra={"seed": 1})
    assert hash(a) == hash(ImageRequest("x", n=2, extra={"seed": 1}))
    with pytest.raises(AttributeError):
        a.n = 3  # type: ignore[misc]
