"""The request's choices as types: each Literal matches its enum, and custom sizes are explicit.

What mypy accepts and refuses is locked by ``tests/typecheck/api.py`` (``mypy --strict`` in CI).
"""

from __future__ import annotations

from typing import get_args

import pytest

from odiqueue import (
    Background,
    CustomSize,
    ImageRequest,
    InvalidParameterError,
    Moderation,
    OutputFormat,
    Quality,
    Size,
)
from odiqueue._request import (
    BackgroundName,
    ModerationName,
    OutputFormatName,
    QualityName,
    SizeName,
)


@pytest.mark.parametrize(
    ("names", "choice"),
    [
        (SizeName, Size),
        (QualityName, Quality),
        (BackgroundName, Background),
        (OutputFormatName, OutputFormat),
        (ModerationName, Moderation),
    ],
)
def test_each_literal_lists_exactly_its_enum(names: object, choice: type) -> None:
    """The strings a type checker accepts are exactly the enum's values, in order."""
    assert get_args(names) == tuple(member.value for member in choice)


def test_custom_size_is_sent_as_width_x_height() -> None:
    """CustomSize and a (width, height) tuple read as the text WIDTHxHEIGHT."""
    assert str(CustomSize(2048, 1152)) == "2048x1152"
    assert CustomSize.parse(" 2048X1152 ") == CustomSize(2048, 1152)
    assert ImageRequest("a", size=(1536, 1024)).size is Size.LANDSCAPE
    assert ImageRequest("a", size=CustomSize(1024, 1024)).size is Size.SQUARE


@pytest.mark.parametrize("text", ["2048", "x1152", "2048x", "axb", "2048x1152x3", ""])
def test_custom_size_parse_refuses_other_text(text: str) -> None:
    """CustomSize.parse names text that is not WIDTHxHEIGHT."""
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        CustomSize.parse(text)


@pytest.mark.parametrize("value", [(2048,), (2048, 1152, 1), (2048.0, 1152), (True, 1024)])
def test_a_tuple_that_is_not_a_size_names_the_field(value: object) -> None:
    """A tuple that is not two whole numbers is refused as size, before anything is sent."""
    with pytest.raises(InvalidParameterError) as caught:
        ImageRequest("a", size=value)  # type: ignore[arg-type]
    assert caught.value.field == "size"


@pytest.mark.parametrize(("width", "height"), [(0, 1024), (1024, -16), (True, 1024), ("2048", 1)])
def test_custom_size_sides_are_whole_positive_numbers(width: object, height: object) -> None:
    """CustomSize refuses a side that is not a whole number of pixels, naming size."""
    with pytest.raises(InvalidParameterError) as caught:
        CustomSize(width, height)  # type: ignore[arg-type]
    assert caught.value.field == "size"
