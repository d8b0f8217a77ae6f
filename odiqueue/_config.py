"""Settings: timeouts, limits, retry and poll policies, a batch's options, presets, the API key.

Every policy is a frozen, keyword-only attrs class whose defaults are named ``DEFAULT_*``
constants, so a caller changes one number without restating the others::

    AsyncClient(retry=RetryPolicy(attempts=10), poll=PollPolicy(maximum=5.0))
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final, Literal

import attrs
from yarl import URL

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
    "PRESETS",
    "VERSION",
    "BatchOptions",
    "DownloadPolicy",
    "Limits",
    "PollPolicy",
    "RetryPolicy",
    "Secret",
    "Timeouts",
    "origin_of",
    "parse_url",
    "resolve_api_key",
    "resolve_base_url",
]

try:
    VERSION: Final = version("odiqueue")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    VERSION = "0+unknown"  # type: ignore[misc]

ENV_API_KEY: Final = "ODIQUEUE_API_KEY"
ENV_BASE_URL: Final = "ODIQUEUE_BASE_URL"
DEFAULT_MODEL: Final = "gpt_image_1"
DEFAULT_PROVIDER: Final = "odirouter"
PRESETS: Final = {
    "odirouter": "https://odirouter.ai/model",
    "seaart": "https://cloud.seaart.ai/model",
}

DEFAULT_CONNECT_TIMEOUT: Final = 10.0
DEFAULT_READ_TIMEOUT: Final = 60.0
DEFAULT_MAX_CONNECTIONS: Final = 100
DEFAULT_MAX_JSON_BYTES: Final = 64 * 1024 * 1024
DEFAULT_MAX_IMAGE_BYTES: Final = 64 * 1024 * 1024

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
    """

    max_connections: int = attrs.field(default=DEFAULT_MAX_CONNECTIONS, validator=_positive)
    max_json_bytes: int = attrs.field(default=DEFAULT_MAX_JSON_BYTES, validator=_positive)
    max_image_bytes: int = attrs.field(default=DEFAULT_MAX_IMAGE_BYTES, validator=_positive)


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
    :class:`~odiqueue.DeadlineExceededError`.
    """

    initial: float = attrs.field(default=DEFAULT_POLL_INITIAL, validator=_positive)
    multiplier: float = attrs.field(default=DEFAULT_POLL_MULTIPLIER, validator=_positive)
    maximum: float = attrs.field(default=DEFAULT_POLL_MAXIMUM, validator=_positive)
    jitter: float = attrs.field(default=DEFAULT_POLL_JITTER, validator=_fraction)
    seconds_per_position: float = attrs.field(
        default=DEFAULT_SECONDS_PER_QUEUE_POSITION, validator=_positive
    )
    deadline: float | None = attrs.field(default=None, validator=_positive_or_none)


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


class Secret:
    """An API key that never shows itself: its repr and str end in at most its last four
    characters (``sk-…abcd``)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The key itself, for the Authorization header only."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self})"

    def __str__(self) -> str:
        # Short keys show nothing: four characters of eight would be half the key.
        tail = self._value[-4:] if len(self._value) >= 16 else ""
        return f"…{tail}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def resolve_api_key(api_key: str | Secret | None) -> Secret:
    """The key given, else ``$ODIQUEUE_API_KEY``; a clear error when neither is set."""
    if isinstance(api_key, Secret):
        return api_key
    value = api_key if api_key is not None else os.environ.get(ENV_API_KEY, "")
    value = value.strip()
    if not value:
        raise ConfigurationError(
            f"no API key: pass api_key=... or set the {ENV_API_KEY} environment variable"
        )
    if any(c.isspace() for c in value) or not value.isprintable():
        raise ConfigurationError("the API key contains spaces or control characters")
    if not value.isascii():
        # An HTTP header carries ASCII: anything else is a paste gone wrong ("…", quotes).
        raise ConfigurationError("the API key contains characters other than ASCII")
    return Secret(value)


def resolve_base_url(
    base_url: str | None, provider: str | None, *, allow_insecure_http: bool = False
) -> URL:
    """Pick the base URL: an explicit one, else ``$ODIQUEUE_BASE_URL``, else a preset.

    Plain ``http`` is accepted only for loopback addresses (the emulator) unless
    ``allow_insecure_http`` is set, because the API key would travel in clear text.
    """
    if base_url is None and provider is not None:
        if provider not in PRESETS:
            raise ConfigurationError(
                f"provider={provider!r} is unknown: use one of {', '.join(sorted(PRESETS))} "
                "or pass base_url"
            )
        raw = PRESETS[provider]
    else:
        raw = base_url or os.environ.get(ENV_BASE_URL) or PRESETS[DEFAULT_PROVIDER]
    try:
        url = parse_url(raw.rstrip("/"))
    except ValueError as exc:
        raise ConfigurationError(f"base_url={raw!r} is not a URL: {exc}") from None
    if (
        url.scheme not in ("http", "https")
        or not url.host
        or not _HOST.fullmatch(url.raw_host or "")
    ):
        raise ConfigurationError(f"base_url={raw!r} must be an absolute http(s) URL")
    if url.user or url.password or url.query_string or url.fragment:
        raise ConfigurationError(f"base_url={raw!r} must not carry credentials, query or fragment")
    if url.scheme == "http" and not allow_insecure_http and not is_loopback(url.host):
        raise ConfigurationError(
            f"base_url={raw!r} uses plain http to a remote host, which would send the API key "
            "in clear text: use https, or pass allow_insecure_http=True"
        )
    return url


def parse_url(raw: str) -> URL:
    """``raw`` as a URL, checked whole: yarl checks a port (and some hosts) only when asked,
    so a bad one would otherwise raise later, far from where the text came in. Raises
    ``ValueError``."""
    url = URL(raw)
    url.port  # noqa: B018 (the check is the point)
    return url


# What a host name or address may hold (yarl lets a space through).
_HOST: Final = re.compile(r"[A-Za-z0-9._\-:\[\]%]+")


@functools.lru_cache(maxsize=64)
def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def origin_of(url: URL) -> tuple[str, str, int | None]:
    """The (scheme, host, port) triple that decides where the API key may be sent."""
    return (url.scheme, (url.host or "").lower(), url.port)
