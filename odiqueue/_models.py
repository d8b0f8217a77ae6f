"""The data a job is made of: the request, its handle, its status, its result.

All plain attrs classes: how they look on the wire lives in ``_wire.py``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Final, TypeVar

import attrs

from odiqueue._errors import (
    InvalidParameterError,
    JobCancelledError,
    JobFailedError,
    OdiqueueError,
)

__all__ = [
    "Background",
    "BatchItem",
    "CancelOutcome",
    "Cancelled",
    "Failed",
    "Image",
    "ImageRequest",
    "ImageResult",
    "JobHandle",
    "JobStatus",
    "LogLine",
    "Moderation",
    "Outcome",
    "OutputFormat",
    "Quality",
    "Queued",
    "Running",
    "Size",
    "Succeeded",
    "failure_of",
]

MAX_PROMPT_CHARS: Final = 32000
MAX_IMAGES: Final = 10


class _Choice(str, enum.Enum):
    """A documented set of string values; compares equal to its plain string."""

    def __str__(self) -> str:
        return str(self.value)


class Size(_Choice):
    """Image dimensions (default ``auto``)."""

    SQUARE = "1024x1024"
    PORTRAIT = "1024x1536"
    LANDSCAPE = "1536x1024"
    AUTO = "auto"


class Quality(_Choice):
    """Rendering quality (default ``auto``)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    AUTO = "auto"


class Background(_Choice):
    """Background handling (default ``auto``); ``transparent`` needs png or webp."""

    TRANSPARENT = "transparent"
    OPAQUE = "opaque"
    AUTO = "auto"


class OutputFormat(_Choice):
    """Image file format (default ``png``)."""

    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"

    @property
    def extension(self) -> str:
        """The usual file extension, without the dot."""
        return "jpg" if self is OutputFormat.JPEG else self.value


class Moderation(_Choice):
    """Content moderation strictness (default ``auto``)."""

    AUTO = "auto"
    LOW = "low"


C = TypeVar("C", bound=_Choice)


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


def _size(value: object) -> Size | None:
    return _choice(Size, "size", value)


def _quality(value: object) -> Quality | None:
    return _choice(Quality, "quality", value)


def _background(value: object) -> Background | None:
    return _choice(Background, "background", value)


def _output_format(value: object) -> OutputFormat | None:
    return _choice(OutputFormat, "output_format", value)


def _moderation(value: object) -> Moderation | None:
    return _choice(Moderation, "moderation", value)


def _int_in(field: str, low: int, high: int, extra: str = "") -> Any:
    def check(instance: object, attribute: object, value: object) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidParameterError(field, value, f"an integer from {low} to {high}{extra}")

    return check


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
    n: int | None = attrs.field(default=None, kw_only=True, validator=_int_in("n", 1, MAX_IMAGES))
    #: Server default ``auto``.
    size: Size | None = attrs.field(default=None, kw_only=True, converter=_size)
    #: Server default ``auto``.
    quality: Quality | None = attrs.field(default=None, kw_only=True, converter=_quality)
    #: Server default ``auto``.
    background: Background | None = attrs.field(default=None, kw_only=True, converter=_background)
    #: Server default ``png``.
    output_format: OutputFormat | None = attrs.field(
        default=None, kw_only=True, converter=_output_format
    )
    #: 0..100, only with jpeg or webp (server default 100).
    output_compression: int | None = attrs.field(
        default=None,
        kw_only=True,
        validator=_int_in("output_compression", 0, 100, ", and only with jpeg or webp"),
    )
    #: Server default ``auto``.
    moderation: Moderation | None = attrs.field(default=None, kw_only=True, converter=_moderation)
    #: An id for the end user, for the provider's abuse monitoring.
    user: str | None = attrs.field(default=None, kw_only=True, validator=_check_user)
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


@attrs.frozen
class JobHandle:
    """A submitted job: its id and the three URLs the server gave (or that were built)."""

    request_id: str
    status_url: str
    response_url: str
    cancel_url: str
    queue_position: int | None = None


@attrs.frozen
class LogLine:
    """One log line a running job reported."""

    message: str
    level: str | None = None
    timestamp: str | None = None


@attrs.frozen
class Queued:
    """Waiting for a worker; ``position`` jobs are ahead of it (when the server says)."""

    request_id: str
    position: int | None = None
    terminal: ClassVar[bool] = False


@attrs.frozen
class Running:
    """Being generated. ``progress`` is 0..1 when the server reports it.

    ``raw_status`` is the server's own word: an unknown one is treated as running.
    """

    request_id: str
    logs: tuple[LogLine, ...] = ()
    progress: float | None = None
    raw_status: str = "IN_PROGRESS"
    terminal: ClassVar[bool] = False


@attrs.frozen
class Succeeded:
    """Completed with images ready at the response URL."""

    request_id: str
    inference_time: float | None = None
    terminal: ClassVar[bool] = True


@attrs.frozen
class Failed:
    """Completed with an error; ``error_type`` is e.g. INFERENCE_FAILURE or CONTENT_BLOCKED."""

    request_id: str
    error: str
    error_type: str | None = None
    terminal: ClassVar[bool] = True


@attrs.frozen
class Cancelled:
    """Completed because it was cancelled."""

    request_id: str
    error: str = "cancelled"
    terminal: ClassVar[bool] = True


JobStatus = Queued | Running | Succeeded | Failed | Cancelled


def failure_of(
    status: JobStatus, request_id: str | None = None
) -> JobFailedError | JobCancelledError | None:
    """The error a job that ended without images stands for; None for any other status."""
    request_id = request_id or status.request_id
    if isinstance(status, Failed):
        return JobFailedError(status.error, error_type=status.error_type, request_id=request_id)
    if isinstance(status, Cancelled):
        return JobCancelledError(status.error, error_type="CANCELED", request_id=request_id)
    return None


@attrs.frozen
class Image:
    """One generated image: a URL to download, or inline base64 data.

    Use :meth:`AsyncClient.download` to save it; :meth:`decode` gives inline bytes.
    """

    url: str | None = None
    b64: str | None = attrs.field(default=None, repr=lambda v: "None" if v is None else "<base64>")
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    file_name: str | None = None
    file_size: int | None = None

    @property
    def inline(self) -> bool:
        """Whether the bytes came in the reply itself (no download needed)."""
        return self.b64 is not None

    def decode(self) -> bytes:
        """The inline image bytes; ``ValueError`` for a URL image or bad base64."""
        if self.b64 is None:
            raise ValueError("this image is a URL: download it with AsyncClient.download")
        try:
            return base64.b64decode(self.b64, validate=False)
        except binascii.Error as exc:
            raise ValueError(f"inline image is not valid base64: {exc}") from None


@attrs.frozen
class ImageResult:
    """A finished job's images, in the order the server gave them, and its raw JSON."""

    request_id: str
    images: tuple[Image, ...]
    raw: Mapping[str, Any] = attrs.field(repr=False, eq=False)


class CancelOutcome(_Choice):
    """What a cancel achieved."""

    #: The server accepted the cancellation (202).
    REQUESTED = "CANCELLATION_REQUESTED"
    #: The job had already finished; nothing to cancel (400 ALREADY_COMPLETED).
    ALREADY_COMPLETED = "ALREADY_COMPLETED"


@attrs.frozen(kw_only=True)
class Outcome:
    """What became of one item of a batch.

    ``ok`` items have their files in ``paths`` (in image order); failed ones carry ``error``.
    Times are on the monotonic clock (``time.monotonic()``), None where a step did not
    happen in this run. ``polls`` counts the status requests the item cost in this run and
    ``attempts`` its submissions. ``resumed`` is true when an earlier run had submitted (or
    saved) it; ``uncertain`` when an earlier run's submit may have created a job this run
    could not find, so the item was submitted again.
    """

    key: str
    index: int
    request: ImageRequest = attrs.field(repr=False)
    request_id: str | None = None
    paths: tuple[Path, ...] = ()
    error: OdiqueueError | None = None
    attempts: int = 0
    polls: int = 0
    submitted_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    saved_at: float | None = None
    resumed: bool = False
    uncertain: bool = False

    @property
    def ok(self) -> bool:
        """Whether the item's images are saved."""
        return self.error is None


@attrs.frozen
class BatchItem:
    """One item of :meth:`AsyncClient.generate_many` with its own key and file name.

    ``key`` names the item across runs (default: a hash of the request); ``name`` is the
    file name for its images, used as it is (made safe; the extension follows the format,
    and an image number is added when the job makes several).

    >>> BatchItem(ImageRequest("A red mug"), key="sku-1042", name="red-mug")
    """

    request: ImageRequest = attrs.field(validator=attrs.validators.instance_of(ImageRequest))
    key: str | None = attrs.field(default=None, kw_only=True)
    name: str | None = attrs.field(default=None, kw_only=True)
