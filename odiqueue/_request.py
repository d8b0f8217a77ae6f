"""What a job asks for: :class:`ImageRequest`, its choices, and the rules it is checked by.

A plain attrs class checked when it is made: how it looks on the wire lives in ``_wire.py``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final, Literal, TypeVar

import attrs

from odiqueue._errors import (
    InvalidParameterError,
)

__all__ = [
    "MAX_IMAGES",
    "MAX_PROMPT_CHARS",
    "PARAMETERS",
    "Background",
    "BackgroundName",
    "Choice",
    "CustomSize",
    "ImageRequest",
    "Moderation",
    "ModerationName",
    "OutputFormat",
    "OutputFormatName",
    "Parameter",
    "Quality",
    "QualityName",
    "Size",
    "SizeName",
    "SizeValue",
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


C = TypeVar("C", bound=Choice)


def _choice(cls: type[C], field: str, value: object) -> C | None:
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, str):
        try:
            return cls(value.strip().lower())
        except ValueError:
            pass
    allowed = ", ".join(m.value for m in cls)
    raise InvalidParameterError(field, value, f"one of {allowed}")


# The converters' parameter types are what ImageRequest's parameters accept (attrs takes
# them from here); at run time they still read any text (a CSV cell, a flag) and refuse
# what is not allowed with InvalidParameterError.


def _size(value: SizeValue | None) -> Size | None:
    text: object = value
    if isinstance(value, CustomSize):
        text = str(value)  # the text the API reads
    elif isinstance(value, tuple) and len(value) == 2 and all(type(v) is int for v in value):
        text = f"{value[0]}x{value[1]}"
    return _choice(Size, "size", text)


def _quality(value: Quality | QualityName | None) -> Quality | None:
    return _choice(Quality, "quality", value)


def _background(value: Background | BackgroundName | None) -> Background | None:
    return _choice(Background, "background", value)


def _output_format(value: OutputFormat | OutputFormatName | None) -> OutputFormat | None:
    return _choice(OutputFormat, "output_format", value)


def _moderation(value: Moderation | ModerationName | None) -> Moderation | None:
    return _choice(Moderation, "moderation", value)


def _int_in(field: str, low: int, high: int, extra: str = "") -> Any:
    def check(instance: object, attribute: object, value: object) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidParameterError(field, value, f"an integer from {low} to {high}{extra}")

    return check


@attrs.frozen
class Parameter:
    """One optional field of :class:`ImageRequest`, as a command line or a column sees it."""

    #: The field's name (also its column name in a product list).
    name: str
    #: What it sets, in a few words (for help texts).
    help: str
    #: The values it takes, when it is one of a documented few.
    choices: type[Choice] | None = None
    #: ``"low-high"`` for a whole number (a cell or an argument is read as an integer).
    number: str | None = None
    #: A shorter name: the command line's flag (``--format``) and a column alias.
    short: str | None = None
    #: Whether the command line has an option for it.
    flag: bool = True

    @property
    def option(self) -> str:
        """The command line's option for it (``--size``, ``--format``)."""
        return f"--{self.short or self.name}"

    @property
    def columns(self) -> tuple[str, ...]:
        """The column names a product list may give it under."""
        return (self.name,) if self.short is None else (self.name, self.short)


_PARAMETER: Final = "odiqueue.parameter"


def _param(
    help: str,
    *,
    choices: type[Choice] | None = None,
    number: str | None = None,
    short: str | None = None,
    flag: bool = True,
) -> dict[str, Parameter]:
    # The name is filled in from the attrs field once the class exists (see PARAMETERS).
    return {_PARAMETER: Parameter("", help, choices, number, short, flag)}


def _check_prompt(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_PROMPT_CHARS:
        raise InvalidParameterError(
            "prompt", value, f"a string of 1 to {MAX_PROMPT_CHARS} characters"
        )


def _check_user(
    instance: object, attribute: attrs.Attribute[str | None], value: str | None
) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidParameterError("user", value, "a string identifying the end user")


def _freeze_extra(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise InvalidParameterError("extra", value, "a mapping of extra API fields")
    for key, item in value.items():
        if not isinstance(key, str):
            raise InvalidParameterError("extra", key, "string field names")
        if key in _FIELD_NAMES:
            raise InvalidParameterError(
                f"extra[{key!r}]", item, f"set {key} as its own argument, not through extra"
            )
        try:
            json.dumps(item)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"extra[{key!r}]", item, "a JSON value") from None
    return MappingProxyType(dict(value))


@attrs.frozen
class ImageRequest:
    """One image-generation request, checked against the documented ranges on construction.

    Fields left as ``None`` are not sent, so the server applies its documented default
    (shown per field). ``extra`` passes fields the API adds later straight through.

    >>> ImageRequest("A red apple on a white table", size="1024x1024", output_format="webp")
    ImageRequest(prompt='A red apple on a white table', n=None, size=<Size.SQUARE: ...>, ...)

    Raises :class:`~odiqueue.InvalidParameterError` naming the field, the value and what is
    allowed, before anything is sent.
    """

    prompt: str = attrs.field(validator=_check_prompt)
    #: How many images, 1..10 (server default 1).
    n: int | None = attrs.field(
        default=None,
        kw_only=True,
        validator=_int_in("n", 1, MAX_IMAGES),
        metadata=_param("images per prompt", number="1-10"),
    )
    #: Server default ``auto``.
    size: Size | None = attrs.field(
        default=None, kw_only=True, converter=_size, metadata=_param("image size", choices=Size)
    )
    #: Server default ``auto``.
    quality: Quality | None = attrs.field(
        default=None, kw_only=True, converter=_quality, metadata=_param("quality", choices=Quality)
    )
    #: Server default ``auto``.
    background: Background | None = attrs.field(
        default=None,
        kw_only=True,
        converter=_background,
        metadata=_param("background", choices=Background),
    )
    #: Server default ``png``.
    output_format: OutputFormat | None = attrs.field(
        default=None,
        kw_only=True,
        converter=_output_format,
        metadata=_param("file format", choices=OutputFormat, short="format"),
    )
    #: 0..100, only with jpeg or webp (server default 100).
    output_compression: int | None = attrs.field(
        default=None,
        kw_only=True,
        validator=_int_in("output_compression", 0, 100, ", and only with jpeg or webp"),
        metadata=_param("jpeg/webp compression", number="0-100", short="compression"),
    )
    #: Server default ``auto``.
    moderation: Moderation | None = attrs.field(
        default=None,
        kw_only=True,
        converter=_moderation,
        metadata=_param("moderation", choices=Moderation),
    )
    #: An id for the end user, for the provider's abuse monitoring.
    user: str | None = attrs.field(
        default=None,
        kw_only=True,
        validator=_check_user,
        metadata=_param("end-user id", flag=False),
    )
    #: Fields the API adds later, sent as they are.
    extra: Mapping[str, Any] = attrs.field(
        factory=dict, kw_only=True, converter=_freeze_extra, hash=False
    )

    DEFAULTS: ClassVar[Mapping[str, object]] = MappingProxyType(
        {
            "n": 1,
            "size": Size.AUTO,
            "quality": Quality.AUTO,
            "background": Background.AUTO,
            "output_format": OutputFormat.PNG,
            "output_compression": 100,
            "moderation": Moderation.AUTO,
        }
    )

    def __attrs_post_init__(self) -> None:
        fmt = self.format
        if self.output_compression is not None and fmt is OutputFormat.PNG:
            raise InvalidParameterError(
                "output_compression",
                self.output_compression,
                "only with output_format jpeg or webp (png is lossless)",
            )
        if self.background is Background.TRANSPARENT and fmt is OutputFormat.JPEG:
            raise InvalidParameterError(
                "background",
                "transparent",
                "only with output_format png or webp (jpeg has no alpha)",
            )

    @property
    def format(self) -> OutputFormat:
        """The output format the server will use (``png`` when not set)."""
        return self.output_format or OutputFormat.PNG

    @property
    def count(self) -> int:
        """The number of images the server will make (1 when not set)."""
        return self.n or 1


_FIELD_NAMES: Final = frozenset(a.name for a in attrs.fields(ImageRequest)) - {"extra"}

#: The request's optional parameters, in the order the class declares them: the one list
#: the wire encoder, the command line's options and a product list's columns are made from.
PARAMETERS: Final[tuple[Parameter, ...]] = tuple(
    attrs.evolve(a.metadata[_PARAMETER], name=a.name)
    for a in attrs.fields(ImageRequest)
    if _PARAMETER in a.metadata
)
