"""odiqueue: an asyncio client for the gpt_image_1 image-generation queue API.

>>> from odiqueue import AsyncClient, ImageRequest
>>> async with AsyncClient() as client:
...     result = await client.generate(ImageRequest("A red apple on a white table"))
...     await client.download(result.images[0], "apple.png")

Without ``await`` (scripts, notebooks, Django or Flask), :class:`Client` has the same calls:

>>> from odiqueue import Client
>>> with Client() as client:
...     result = client.generate("A red apple on a white table")

Logs go to the ``odiqueue`` logger; ``ODIQUEUE_LOG=debug`` prints them on stderr.
"""

from odiqueue import _logging
from odiqueue._backoff import instant_waits
from odiqueue._batch import Batch, Progress, StopReport
from odiqueue._client import AsyncClient
from odiqueue._config import VERSION as __version__  # noqa: F401 (re-exported, unlisted)
from odiqueue._config import (
    BatchOptions,
    DownloadPolicy,
    Limits,
    PollPolicy,
    RetryPolicy,
    Timeouts,
)
from odiqueue._errors import (
    APIError,
    AuthenticationError,
    BudgetExceededError,
    ClientClosedError,
    ConfigurationError,
    ConnectError,
    ContentPolicyError,
    DeadlineExceededError,
    DecodeError,
    ImageDownloadError,
    InsufficientCreditsError,
    InvalidParameterError,
    InvalidRequestError,
    JobCancelledError,
    JobError,
    JobFailedError,
    NotFoundError,
    OdiqueueError,
    OutputFileError,
    OutputFileExistsError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ResponseTooLargeError,
    ServerError,
    SubmissionUncertainError,
    TransportError,
    UnsafeURLError,
)
from odiqueue._models import (
    BatchItem,
    Cancelled,
    CancelOutcome,
    Failed,
    Image,
    ImageResult,
    JobHandle,
    JobStatus,
    LogLine,
    Outcome,
    Queued,
    Running,
    Succeeded,
)
from odiqueue._prices import PriceTable, load_prices
from odiqueue._request import (
    Background,
    CustomSize,
    ImageRequest,
    Moderation,
    OutputFormat,
    Quality,
    Size,
)
from odiqueue._sink import SavedFile
from odiqueue._sync import Client, SyncBatch

_logging.configure_from_env()

__all__ = [
    "APIError",
    "AsyncClient",
    "AuthenticationError",
    "Background",
    "Batch",
    "BatchItem",
    "BatchOptions",
    "BudgetExceededError",
    "CancelOutcome",
    "Cancelled",
    "Client",
    "ClientClosedError",
    "ConfigurationError",
    "ConnectError",
    "ContentPolicyError",
    "CustomSize",
    "DeadlineExceededError",
    "DecodeError",
    "DownloadPolicy",
    "Failed",
    "Image",
    "ImageDownloadError",
    "ImageRequest",
    "ImageResult",
    "InsufficientCreditsError",
    "InvalidParameterError",
    "InvalidRequestError",
    "JobCancelledError",
    "JobError",
    "JobFailedError",
    "JobHandle",
    "JobStatus",
    "Limits",
    "LogLine",
    "Moderation",
    "NotFoundError",
    "OdiqueueError",
    "Outcome",
    "OutputFileError",
    "OutputFileExistsError",
    "OutputFormat",
    "PermissionDeniedError",
    "PollPolicy",
    "PriceTable",
    "Progress",
    "Quality",
    "Queued",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseTooLargeError",
    "RetryPolicy",
    "Running",
    "SavedFile",
    "ServerError",
    "Size",
    "StopReport",
    "SubmissionUncertainError",
    "Succeeded",
    "SyncBatch",
    "Timeouts",
    "TransportError",
    "UnsafeURLError",
    "instant_waits",
    "load_prices",
]
