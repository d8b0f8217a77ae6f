"""What a job asks for: :class:`ImageRequest`, its choices, and the rules it is checked by.

A plain attrs class checked when it is made: how it looks on the wire lives in ``_wire.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final

import attrs

from odiqueue._choices import (
    MAX_IMAGES,
    MAX_PROMPT_CHARS,
    Background,
    BackgroundName,
    Choice,
    CustomSize,
    InputFidelity,
    Moderation,
    ModerationName,
    OutputFormat,
    OutputFormatName,
    Quality,
    QualityName,
    Size,
    SizeName,
    SizeValue,
    choice,
)
from odiqueue._errors import (
    InvalidParameterError,
)
from odiqueue._imageref import ImageRef
from odiqueue._modelspecs import (
    FIXED_SIZES,
    MODELS,
    model_violations,
    parse_size,
    size_allowed,
)

__all__ = [
    "MAX_IMAGES",
    "MAX_PROMPT_CHARS",
    "PARAMETERS",
    "Background",
    "BackgroundName",
    "Choice",
    "CustomSize",
    "ImageRef",
    "ImageRequest",
    "InputFidelity",
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


# The converters' parameter types are what ImageRequest's parameters accept (attrs takes
# them from here); at run time they still read any text (a CSV cell, a flag) and refuse
# what is not allowed with InvalidParameterError.
def _size(value: SizeValue | None) -> Size | str | None:
    text: object = value
    if isinstance(value, CustomSize):
        text = str(value)  # the text the API reads
    elif isinstance(value, tuple) and len(value) == 2 and all(type(v) is int for v in value):
        text = f"{value[0]}x{value[1]}"
    # A custom WIDTHxHEIGHT is kept as text: which ones a model takes is its rule (see
    # ``_modelspecs``), checked against the request's model or the client's.
    if isinstance(text, str) and not isinstance(text, Size):
        custom = text.strip().lower().replace("\u00d7", "x")
        if parse_size(custom) is not None and custom not in FIXED_SIZES:
            return custom
    try:
        return choice(Size, "size", text)
    except InvalidParameterError:
        raise InvalidParameterError(
            "size", value, "one of 1024x1024, 1024x1536, 1536x1024, auto, or WIDTHxHEIGHT"
        ) from None


def _quality(value: Quality | QualityName | None) -> Quality | None:
    return choice(Quality, "quality", value)


def _background(value: Background | BackgroundName | None) -> Background | None:
    return choice(Background, "background", value)


def _output_format(value: OutputFormat | OutputFormatName | None) -> OutputFormat | None:
    return choice(OutputFormat, "output_format", value)


def _moderation(value: Moderation | ModerationName | None) -> Moderation | None:
    return choice(Moderation, "moderation", value)


def _input_fidelity(value: object) -> InputFidelity | None:
    return choice(InputFidelity, "input_fidelity", value)


def _some_model_takes(size: str) -> bool:
    return isinstance(size, Size) or any(size_allowed(spec, size) for spec in MODELS.values())


def _model(value: object) -> str | None:
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else ""
    if not text or not all(c.isalnum() or c in "_-." for c in text):
        raise InvalidParameterError("model", value, "a model name like gpt_image_2_edit")
    return text


def _ref(field: str, value: object) -> ImageRef:
    try:
        return ImageRef.of(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            field, value, f"an http(s) URL or a local file ({exc})"
        ) from None


def _images(value: object) -> tuple[ImageRef, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike, ImageRef)):
        value = (value,)
    if not isinstance(value, Iterable):
        raise InvalidParameterError("images", value, "a list of image references")
    return tuple(_ref(f"images[{i}]", item) for i, item in enumerate(value))


def _mask(value: object) -> ImageRef | None:
    return None if value is None else _ref("mask", value)


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
    #: Whether it is a field of the submit body (``model`` picks the queue instead).
    wire: bool = True
    #: Whether a cell holds several values, separated by ``|``.
    listed: bool = False
    #: A form the value may take beyond ``choices`` (``WxH`` for a custom size).
    custom: str | None = None

    @property
    def option(self) -> str:
        """The command line's option for it (``--size``, ``--format``, ``--input-fidelity``)."""
        return "--" + (self.short or self.name).replace("_", "-")

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
    wire: bool = True,
    listed: bool = False,
    custom: str | None = None,
) -> dict[str, Parameter]:
    # The name is filled in from the attrs field once the class exists (see PARAMETERS).
    return {_PARAMETER: Parameter("", help, choices, number, short, flag, wire, listed, custom)}


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
    #: Server default ``auto``. The gpt_image_2 models also take a custom ``WIDTHxHEIGHT``.
    size: Size | str | None = attrs.field(
        default=None,
        kw_only=True,
        converter=_size,
        metadata=_param("image size", choices=Size, custom="WxH"),
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
    #: The model it is for (its queue), e.g. ``gpt_image_2_edit``; None: the client's model.
    model: str | None = attrs.field(
        default=None,
        kw_only=True,
        converter=_model,
        metadata=_param("model", flag=False, wire=False),
    )
    #: Input images of an edit: http(s) URLs, data: URIs or local files (see ImageRef).
    images: tuple[ImageRef, ...] | None = attrs.field(
        default=None,
        kw_only=True,
        converter=_images,
        metadata=_param("input images", flag=False, listed=True),
    )
    #: An edit's mask: transparent areas are edited; it matches the first image's size.
    mask: ImageRef | None = attrs.field(
        default=None, kw_only=True, converter=_mask, metadata=_param("mask image", flag=False)
    )
    #: How strongly an edit keeps input details (gpt_image_1_edit only; server default low).
    input_fidelity: InputFidelity | None = attrs.field(
        default=None,
        kw_only=True,
        converter=_input_fidelity,
        metadata=_param("how closely an edit keeps its input", choices=InputFidelity),
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
            "input_fidelity": InputFidelity.LOW,
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
        if self.model is not None:
            self.check_for(self.model)
        elif isinstance(self.size, str) and not _some_model_takes(self.size):
            # Without a model, a custom size must suit some model of the table; the client
            # checks it against its own model when the request is sent.
            wide = next(spec for spec in MODELS.values() if spec.custom_sizes)
            raise InvalidParameterError("size", self.size, wide.size_rule)

    def check_for(self, model: str) -> None:
        """Raise :class:`~odiqueue.InvalidParameterError` if ``model`` refuses this request.

        Naming the model, the field, the value and the rule. A model not in the table
        (``_modelspecs.MODELS``) refuses nothing: only the common checks apply to it.
        """
        for violation in model_violations(model, self.rule_fields()):
            raise InvalidParameterError(
                violation.field, violation.value, violation.rule, model=model
            )

    def rule_fields(self) -> dict[str, Any]:
        """The fields a model's rules look at, as plain values (as on the wire)."""
        return {
            "size": None if self.size is None else str(self.size),
            "background": None if self.background is None else self.background.value,
            "images": None if self.images is None else [str(ref) for ref in self.images],
            "mask": None if self.mask is None else str(self.mask),
            "input_fidelity": None if self.input_fidelity is None else self.input_fidelity.value,
        }

    @property
    def files(self) -> tuple[ImageRef, ...]:
        """Its local input files (images, then the mask): read when it is submitted."""
        refs = (*(self.images or ()), *(() if self.mask is None else (self.mask,)))
        return tuple(ref for ref in refs if ref.is_file)

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
