"""Settings: timeouts, limits, download, retry and poll policies, and a batch's options.

Which service and which key are ``_account``'s.

Every policy is a frozen, keyword-only attrs class whose defaults are named ``DEFAULT_*``
constants, so a caller changes one number without restating the others::

    AsyncClient(retry=RetryPolicy(attempts=10), poll=PollPolicy(maximum=5.0))
"""

from __future__ import annotations

from collections.abc import Collection
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final, Literal, TypeAlias

import attrs

from odiqueue._errors import ConfigurationError
from odiqueue._imagecheck import pillow_missing
from odiqueue._naming import DEFAULT_TEMPLATE, check_template
from odiqueue._prices import PriceTable

__all__ = [
    "DEFAULT_CANCEL_TIMEOUT",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_JOB_RETRIES",
    "DEFAULT_MODEL",
    "DEFAULT_POLL_CONCURRENCY",
    "DEFAULT_SUBMIT_BURST",
    "VERSION",
    "BatchOptions",
    "DownloadPolicy",
    "Limits",
    "PollPolicy",
    "Redo",
    "RetryPolicy",
    "Timeouts",
]

try:
    VERSION: Final = version("odiqueue")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    VERSION = "0+unknown"  # type: ignore[misc]

DEFAULT_MODEL: Final = "gpt_image_1"

DEFAULT_CONNECT_TIMEOUT: Final = 10.0
DEFAULT_READ_TIMEOUT: Final = 60.0
DEFAULT_MAX_CONNECTIONS: Final = 100
DEFAULT_MAX_JSON_BYTES: Final = 64 * 1024 * 1024
DEFAULT_MAX_IMAGE_BYTES: Final = 64 * 1024 * 1024
DEFAULT_MAX_INLINE_SUBMITS: Final = 4

DEFAULT_DOWNLOAD_TOTAL: Final = 300.0
DEFAULT_DOWNLOAD_MIN_RATE: Final = 2048.0
DEFAULT_DOWNLOAD_GRACE: Final = 10.0

DEFAULT_RETRY_ATTEMPTS: Final = 8
DEFAULT_RETRY_INITIAL: Final = 0.5
DEFAULT_RETRY_MAXIMUM: Final = 30.0
DEFAULT_RETRY_TIMEOUT: Final = 300.0
DEFAULT_MAX_RETRY_AFTER: Final = 120.0

DEFAULT_POLL_INITIAL: Final = 0.5
DEFAULT_POLL_MULTIPLIER: Final = 1.5
DEFAULT_POLL_MAXIMUM: Final = 10.0
DEFAULT_POLL_JITTER: Final = 0.1
DEFAULT_SECONDS_PER_QUEUE_POSITION: Final = 2.0
DEFAULT_UNKNOWN_STATUS_LIMIT: Final = 600.0


def _positive(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value > 0:
        raise ConfigurationError(f"{attribute.name} must be > 0, got {value!r}")


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _positive(instance, attribute, value)


def _fraction(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not 0 <= value <= 1:
        raise ConfigurationError(f"{attribute.name} must be within 0..1, got {value!r}")


@attrs.frozen(kw_only=True)
class Timeouts:
    """Network timeouts in seconds.

    ``connect`` bounds making a connection; ``read`` bounds the wait for each chunk of a reply
    (so a large image download is not cut off as long as bytes keep arriving).
    """

    connect: float = attrs.field(default=DEFAULT_CONNECT_TIMEOUT, validator=_positive)
    read: float = attrs.field(default=DEFAULT_READ_TIMEOUT, validator=_positive)


@attrs.frozen(kw_only=True)
class Limits:
    """Connection-pool and size limits.

    ``max_connections`` sizes the one aiohttp connector; ``max_json_bytes`` and
    ``max_image_bytes`` cap what a reply may make the process hold or write.
    ``max_inline_submits`` bounds the submits with local input files being sent at once:
    each holds its files' base64 in memory until it is sent.
    """

    max_connections: int = attrs.field(default=DEFAULT_MAX_CONNECTIONS, validator=_positive)
    max_json_bytes: int = attrs.field(default=DEFAULT_MAX_JSON_BYTES, validator=_positive)
    max_image_bytes: int = attrs.field(default=DEFAULT_MAX_IMAGE_BYTES, validator=_positive)
    max_inline_submits: int = attrs.field(default=DEFAULT_MAX_INLINE_SUBMITS, validator=_positive)


def _verify_mode(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in ("structure", "decode"):
        raise ConfigurationError(f"verify must be 'structure' or 'decode', got {value!r}")
    if value == "decode" and pillow_missing():
        raise ConfigurationError(
            "verify='decode' needs Pillow to decode images: pip install pillow "
            "(or use verify='structure')"
        )


@attrs.frozen(kw_only=True)
class DownloadPolicy:
    """How each image is downloaded and checked before it is saved under its name.

    ``verify="structure"`` (the default) walks the whole file: a PNG's chunks and their CRCs
    through ``IEND``, a JPEG's markers from ``SOI`` to ``EOI``, a WebP's RIFF length. It
    costs one pass over bytes already in memory. ``verify="decode"`` also decodes every
    pixel with Pillow (which must be installed): slower, and it catches damage inside
    compressed data that a JPEG's structure cannot show. A file that fails is downloaded
    again, like one cut off.

    One image may take at most ``total`` seconds (None: no bound), and once ``grace``
    seconds have passed it must have arrived at ``min_rate`` bytes a second on average (None:
    no minimum), so a host trickling bytes cannot hold a run. The wait for each piece is
    bounded by :attr:`Timeouts.read`. A too-slow download is retried like a timeout.
    """

    verify: Literal["structure", "decode"] = attrs.field(
        default="structure", validator=_verify_mode
    )
    total: float | None = attrs.field(default=DEFAULT_DOWNLOAD_TOTAL, validator=_positive_or_none)
    min_rate: float | None = attrs.field(
        default=DEFAULT_DOWNLOAD_MIN_RATE, validator=_positive_or_none
    )
    grace: float = attrs.field(default=DEFAULT_DOWNLOAD_GRACE, validator=_positive)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How failed calls are retried: exponential backoff with full jitter.

    A call is given up after ``attempts`` tries or ``timeout`` seconds, whichever comes first.
    A ``Retry-After`` longer than ``max_retry_after`` is not waited for: the
    :class:`~odiqueue.RateLimitError` is raised with the server's value instead.
    """

    attempts: int = attrs.field(default=DEFAULT_RETRY_ATTEMPTS, validator=_positive)
    initial: float = attrs.field(default=DEFAULT_RETRY_INITIAL, validator=_positive)
    maximum: float = attrs.field(default=DEFAULT_RETRY_MAXIMUM, validator=_positive)
    timeout: float = attrs.field(default=DEFAULT_RETRY_TIMEOUT, validator=_positive)
    max_retry_after: float = attrs.field(default=DEFAULT_MAX_RETRY_AFTER, validator=_positive)


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How often a job's status is asked for.

    The interval starts at ``initial`` and grows by ``multiplier`` up to ``maximum``, each
    wait spread by ``jitter`` (a fraction) so many jobs do not poll in lockstep. A job far back
    in the queue waits about ``seconds_per_position`` per job ahead of it (still capped by
    ``maximum``). ``deadline`` (seconds from submission, None for none) ends the wait with
    :class:`~odiqueue.DeadlineExceededError`. A job that reports only status values no
    provider documents for ``unknown_status_limit`` seconds is given up with a
    :class:`~odiqueue.DecodeError` (not cancelled: it may still finish, and be fetched by id).
    """

    initial: float = attrs.field(default=DEFAULT_POLL_INITIAL, validator=_positive)
    multiplier: float = attrs.field(default=DEFAULT_POLL_MULTIPLIER, validator=_positive)
    maximum: float = attrs.field(default=DEFAULT_POLL_MAXIMUM, validator=_positive)
    jitter: float = attrs.field(default=DEFAULT_POLL_JITTER, validator=_fraction)
    seconds_per_position: float = attrs.field(
        default=DEFAULT_SECONDS_PER_QUEUE_POSITION, validator=_positive
    )
    deadline: float | None = attrs.field(default=None, validator=_positive_or_none)
    unknown_status_limit: float = attrs.field(
        default=DEFAULT_UNKNOWN_STATUS_LIMIT, validator=_positive
    )


# --- one batch ---------------------------------------------------------------------------

DEFAULT_MAX_IN_FLIGHT: Final = 64
DEFAULT_POLL_CONCURRENCY: Final = 32
DEFAULT_MAX_JOB_RETRIES: Final = 2
DEFAULT_CANCEL_TIMEOUT: Final = 10.0
DEFAULT_SUBMIT_BURST: Final = 8


def _at_least_one(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not value >= 1:
        raise ConfigurationError(f"{attribute.name} must be at least 1, got {value!r}")


def _above_zero_or_none(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not value > 0:
        raise ConfigurationError(f"{attribute.name} must be above 0 (or None), got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not value >= 0:
        raise ConfigurationError(f"{attribute.name} must be >= 0, got {value!r}")


#: What ``redo`` takes: the keys of the items to generate again, ``"failed"`` (every item
#: an earlier run in the folder recorded as failed) or ``"changed"`` (every item whose
#: request changed since an earlier run submitted it).
Redo: TypeAlias = Collection[str] | Literal["failed", "changed"] | None
#: ``redo`` as a batch keeps it: a set of keys, a mode, or None.
RedoChoice: TypeAlias = frozenset[str] | Literal["failed", "changed"] | None
REDO_MODES: Final = ("failed", "changed")


def _redo_choice(value: Redo) -> RedoChoice:
    """``redo`` checked: a mode as it is, keys as a frozen set (none at all: None)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value in REDO_MODES:
            return value  # type: ignore[return-value]
        raise ConfigurationError(
            f"redo={value!r} is neither 'failed' nor 'changed': pass the keys to redo as a "
            f"list, e.g. redo=[{value!r}]"
        )
    keys = frozenset(value)
    bad = sorted(repr(key) for key in keys if not isinstance(key, str) or not key.strip())
    if bad:
        raise ConfigurationError(f"redo: keys must be non-empty strings, got {', '.join(bad)}")
    return keys or None


@attrs.frozen(kw_only=True)
class BatchOptions:
    """The settings of one batch: :meth:`AsyncClient.generate_many`'s keywords.

    - ``max_in_flight`` jobs at most are submitted and unfinished at once;
      ``submit_rate`` (per second, bursts of ``submit_burst``) spaces submits out, and is
      halved for a while after a 429 (None: no limit until the server asks).
    - ``poll_concurrency`` bounds concurrent status requests of the whole batch.
    - A job failing with INFERENCE_FAILURE, INFERENCE_TIMEOUT or INTERNAL_SERVER_ERROR is
      submitted again up to ``max_job_retries`` times. Other failures are outcomes;
      authentication, credit and permission errors stop new submissions and are raised
      after the jobs already paid for are saved.
    - ``deadline`` (seconds per job, from its submission) cancels a job that takes longer.
    - Files are named by ``name_template`` with ``{key}``, ``{index}`` (image number within
      the job), ``{request_id}`` and ``{ext}``; existing files are never overwritten unless
      ``overwrite``.
    - ``out_dir/manifest.jsonl`` records every step: with ``resume`` (the default) running
      the same batch again skips saved items, picks up submitted jobs by id (no new
      payment) and submits only the rest. ``resume=False`` sets the old manifest aside.
    - Leaving early cancels unfinished jobs on the server unless ``keep_remote``.
    - ``max_images`` and ``max_cost`` (US dollars, estimated with ``prices``) cap what the
      batch pays for, counting the jobs earlier runs in the folder paid for: the submit
      that would pass a cap is not sent, nor any after it
      (:class:`~odiqueue.BudgetExceededError` for those items); jobs already paid for
      finish and are saved. Run again with a higher cap to continue. An item the table
      cannot price is refused under ``max_cost`` rather than taken as free.
    - ``redo`` generates items again that an earlier run in the folder recorded: the ones
      whose keys it lists, ``"failed"`` ones, or ``"changed"`` ones (their request differs
      from the one the earlier run sent). Nothing else is submitted. Each earlier image is
      moved to ``out_dir/previous/`` (as ``<name>.<earlier request id><ext>``) once the new
      one is saved; should the new job fail, the earlier image stays where it was. A key no
      earlier run recorded is refused before anything is sent. Without ``redo``, an item
      whose request changed is refused (:class:`~odiqueue.ConfigurationError`).
    """

    max_in_flight: int = attrs.field(default=DEFAULT_MAX_IN_FLIGHT, validator=_at_least_one)
    submit_rate: float | None = attrs.field(default=None, validator=_above_zero_or_none)
    submit_burst: int = attrs.field(default=DEFAULT_SUBMIT_BURST, validator=_at_least_one)
    poll_concurrency: int = attrs.field(default=DEFAULT_POLL_CONCURRENCY, validator=_at_least_one)
    max_job_retries: int = attrs.field(default=DEFAULT_MAX_JOB_RETRIES, validator=_non_negative)
    deadline: float | None = attrs.field(default=None, validator=_non_negative)
    name_template: str = attrs.field(default=DEFAULT_TEMPLATE, converter=check_template)
    overwrite: bool = False
    resume: bool = True
    keep_remote: bool = False
    cancel_timeout: float = attrs.field(default=DEFAULT_CANCEL_TIMEOUT, validator=_non_negative)
    max_images: int | None = attrs.field(default=None, validator=_non_negative)
    max_cost: float | None = attrs.field(default=None, validator=_non_negative)
    prices: PriceTable = attrs.field(factory=PriceTable)
    redo: RedoChoice = attrs.field(default=None, converter=_redo_choice)

    @redo.validator
    def _redo_needs_resume(self, attribute: attrs.Attribute[Any], value: RedoChoice) -> None:
        if value is not None and not self.resume:
            raise ConfigurationError(
                "redo needs the folder's manifest, which resume=False sets aside: drop one"
            )
