"""The documented values of a request's enum-like fields: as enums, and as the strings a
type checker accepts (so ``size="512x512"`` is an error before the code runs), plus the
custom sizes some models take. Which model takes which is ``_modelspecs``'; the request
that uses them is ``_request``.
"""

from __future__ import annotations

import enum
from typing import Final, Literal, TypeVar

import attrs

from odiqueue._errors import InvalidParameterError

__all__ = [
    "MAX_IMAGES",
    "MAX_PROMPT_CHARS",
    "Background",
    "BackgroundName",
    "C",
    "Choice",
    "CustomSize",
    "InputFidelity",
    "Moderation",
    "ModerationName",
    "OutputFormat",
    "OutputFormatName",
    "Quality",
    "QualityName",
    "Size",
    "SizeName",
    "SizeValue",
    "choice",
]


MAX_PROMPT_CHARS: Final = 32000
MAX_IMAGES: Final = 10


class Choice(str, enum.Enum):
    """A documented set of string values; compares equal to its plain string."""

    def __str__(self) -> str:
        return str(self.value)


class Size(Choice):
    """Image dimensions (default ``auto``)."""

    SQUARE = "1024x1024"
    PORTRAIT = "1024x1536"
    LANDSCAPE = "1536x1024"
    AUTO = "auto"


class Quality(Choice):
    """Rendering quality (default ``auto``)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    AUTO = "auto"


class Background(Choice):
    """Background handling (default ``auto``); ``transparent`` needs png or webp."""

    TRANSPARENT = "transparent"
    OPAQUE = "opaque"
    AUTO = "auto"


class OutputFormat(Choice):
    """Image file format (default ``png``)."""

    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"

    @property
    def extension(self) -> str:
        """The usual file extension, without the dot."""
        return "jpg" if self is OutputFormat.JPEG else self.value

    @classmethod
    def from_content_type(cls, content_type: str | None) -> OutputFormat | None:
        """The format a content type announces (None when absent or not one of ours)."""
        return _BY_CONTENT_TYPE.get((content_type or "").split(";", 1)[0].strip().lower())


#: The content types that announce each format (the one place they are mapped).
_BY_CONTENT_TYPE: Final[dict[str, OutputFormat]] = {
    "image/png": OutputFormat.PNG,
    "image/jpeg": OutputFormat.JPEG,
    "image/jpg": OutputFormat.JPEG,
    "image/webp": OutputFormat.WEBP,
}


class Moderation(Choice):
    """Content moderation strictness (default ``auto``)."""

    AUTO = "auto"
    LOW = "low"


# Each choice as the type checker sees its plain strings, so a typo such as size="512x512"
# is an error before the code runs. tests/test_request_types.py keeps each in step with its
# enum above (a Literal cannot be derived from an enum).
#: :class:`Size`'s values as strings.
SizeName = Literal["1024x1024", "1024x1536", "1536x1024", "auto"]
#: :class:`Quality`'s values as strings.
QualityName = Literal["low", "medium", "high", "auto"]
#: :class:`Background`'s values as strings.
BackgroundName = Literal["transparent", "opaque", "auto"]
#: :class:`OutputFormat`'s values as strings.
OutputFormatName = Literal["png", "jpeg", "webp"]
#: :class:`Moderation`'s values as strings.
ModerationName = Literal["auto", "low"]


@attrs.frozen
class CustomSize:
    """A custom ``WIDTHxHEIGHT`` size, for the models that take one (gpt_image_2).

    Built explicitly, so a typo in a fixed size is never mistaken for one; a ``(width,
    height)`` tuple says the same. Which sizes a model takes is checked where the request
    is checked.

    >>> ImageRequest("A wide banner", size=CustomSize(2048, 1152))  # for gpt_image_2
    """

    #: Pixels across.
    width: int = attrs.field(validator=lambda _, __, v: _check_side(v))
    #: Pixels down.
    height: int = attrs.field(validator=lambda _, __, v: _check_side(v))

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"

    @classmethod
    def parse(cls, text: str) -> CustomSize:
        """``"2048x1152"`` as a :class:`CustomSize`; ValueError for anything else."""
        width, sep, height = text.strip().lower().partition("x")
        if not (sep and width.isdecimal() and height.isdecimal()):
            raise ValueError(f"not a WIDTHxHEIGHT size: {text!r}")
        return cls(int(width), int(height))


def _check_side(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidParameterError("size", value, "a width and a height of 1 pixel or more")


#: What ``size=`` takes: a :class:`Size`, its string, or a custom size built explicitly.
SizeValue = Size | SizeName | CustomSize | tuple[int, int]


class InputFidelity(Choice):
    """How strongly an edit keeps its input images' details (gpt_image_1_edit; default low)."""

    HIGH = "high"
    LOW = "low"


C = TypeVar("C", bound=Choice)


def choice(cls: type[C], field: str, value: object) -> C | None:
    """``value`` as a member of ``cls`` (text read case-blind), or InvalidParameterError
    naming ``field`` and the allowed values."""
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, str):
        try:
            return cls(value.strip().lower())
        except ValueError:
            pass
    allowed = ", ".join(m.value for m in cls)
    raise InvalidParameterError(field, value, f"one of {allowed}")
