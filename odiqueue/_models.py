"""What comes back for a job: its handle, its status, its result; and a batch's items and outcomes.

All plain attrs classes: how they look on the wire lives in ``_wire.py``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs

from odiqueue._errors import (
    JobCancelledError,
    JobFailedError,
    OdiqueueError,
)
from odiqueue._request import Choice, ImageRequest, OutputFormat

__all__ = [
    "BatchItem",
    "CancelOutcome",
    "Cancelled",
    "Failed",
    "Image",
    "ImageResult",
    "Item",
    "JobHandle",
    "JobStatus",
    "LogLine",
    "Outcome",
    "Queued",
    "Running",
    "Succeeded",
    "failure_of",
]


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

    @property
    def format(self) -> OutputFormat | None:
        """The format the content type announces (None when absent or not an image type)."""
        return OutputFormat.from_content_type(self.content_type)

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


class CancelOutcome(Choice):
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
    #: The estimated cost of the job this run paid for (None: none, or no known price).
    estimated_cost: float | None = None

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


#: What :meth:`AsyncClient.generate_many` takes as one item: a prompt, a request, a
#: ``(key, request)`` pair or a :class:`BatchItem`.
Item = str | ImageRequest | tuple[str, ImageRequest] | BatchItem
