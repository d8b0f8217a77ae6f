"""What the emulator is told to be: server shape, job timing, reply dialect and faults.

Both classes are frozen, keyword-only attrs classes, so one value can be shared by many
emulators and tests can build variants with :func:`attrs.evolve`.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from typing import Any, Literal

import attrs

__all__ = [
    "CALLS",
    "DEFAULT_PORT",
    "DEFAULT_PREFIX",
    "ERROR_TYPES",
    "FAILURE_TYPES",
    "EmulatorConfig",
    "Faults",
]

#: The request kinds the emulator counts and can inject faults into.
CALLS: frozenset[str] = frozenset({"submit", "status", "result", "cancel", "image"})

#: Server-side error types a job can end with (``CANCELED`` only comes from a cancel call).
#: Written out from the API documents rather than imported from the client, on purpose: a
#: client that got the list wrong must meet a server that did not.
ERROR_TYPES: tuple[str, ...] = (
    "INFERENCE_FAILURE",
    "INFERENCE_TIMEOUT",
    "REQUEST_INVALID",
    "CONTENT_BLOCKED",
    "CANCELED",
    "INTERNAL_SERVER_ERROR",
)

#: Error types a job can be made to fail with, by directive or by random draw.
FAILURE_TYPES: frozenset[str] = frozenset(ERROR_TYPES) - {"CANCELED"}

#: Path in front of ``/v1/queue/...`` on the API origin, as on odirouter.ai.
DEFAULT_PREFIX = "/model"
#: The port ``odiqueue emulator`` serves the API on unless told otherwise.
DEFAULT_PORT = 8000

SubmitShape = Literal["documented", "terse"]
StatusSpelling = Literal["upper", "lower", "aliases"]
ErrorStyle = Literal["string", "object"]
NotReadyStyle = Literal["202", "400"]
ResultShape = Literal["outputs", "images", "output_content", "openai_b64", "openai_url", "data_uri"]

SUBMIT_SHAPES: tuple[str, ...] = ("documented", "terse")
STATUS_SPELLINGS: tuple[str, ...] = ("upper", "lower", "aliases")
ERROR_STYLES: tuple[str, ...] = ("string", "object")
NOT_READY_STYLES: tuple[str, ...] = ("202", "400")
RESULT_SHAPES: tuple[str, ...] = (
    "outputs",
    "images",
    "output_content",
    "openai_b64",
    "openai_url",
    "data_uri",
)


def _probability(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be within 0..1, got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


def _positive_int(instance: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{attribute.name} must be >= 1 (or None for no limit), got {value!r}")


def _check_prefix(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if value and (not value.startswith("/") or value.endswith("/")):
        raise ValueError(f"prefix must be empty or start with '/' and not end with '/': {value!r}")


def _freeze_rates(value: Mapping[str, float]) -> Mapping[str, float]:
    # A read-only copy, so a frozen Faults cannot change under a running emulator.
    return types.MappingProxyType({str(k): float(v) for k, v in value.items()})


def _check_rates(
    instance: object, attribute: attrs.Attribute[Any], value: Mapping[str, float]
) -> None:
    unknown = set(value) - FAILURE_TYPES
    if unknown:
        raise ValueError(
            f"job_failure_rates has unknown error types {sorted(unknown)}; "
            f"use {sorted(FAILURE_TYPES)}"
        )
    for error_type, rate in value.items():
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"job_failure_rates[{error_type!r}] must be within 0..1")
    if sum(value.values()) > 1.0 + 1e-9:
        raise ValueError("job_failure_rates must add up to at most 1")


def _check_calls(instance: object, attribute: attrs.Attribute[Any], value: frozenset[str]) -> None:
    unknown = value - CALLS
    if unknown:
        raise ValueError(f"calls has unknown kinds {sorted(unknown)}; use {sorted(CALLS)}")


@attrs.frozen(kw_only=True)
class Faults:
    """Failures the emulator injects, each a probability per request (all off by default).

    At most one HTTP fault hits a request. They are tried in this order, with one draw from
    an RNG seeded by :attr:`EmulatorConfig.seed`: reset, 429, 503, 500, 502, malformed, slow,
    truncated; when the rates add up past 1 the earlier ones win. ``malformed`` only hits API
    calls and ``truncated`` only hits image downloads.

    What a fault does to a submit matters, because submitting twice costs twice:

    * ``rate_reset``, ``rate_429``, ``rate_503``, ``rate_500``, ``rate_502`` and
      ``rate_malformed`` answer (or drop the connection) *before* any job exists;
    * ``rate_slow`` creates the job first and then delays the reply, which is the
      "server got it, the reply was lost" case a client must not blindly retry.

    On status, result and cancel calls the refusing faults skip the call entirely (a faulted
    cancel cancels nothing) and ``slow`` answers late with what was true when the call arrived.

    The key is checked first: a request with a bad key always gets its 401, never a fault.
    Faulted requests still count in :attr:`Stats.requests` and the job's poll counters.

    Example::

        Faults(rate_429=0.2, retry_after=0.5, calls=frozenset({"status"}))
        Faults(job_failure_rates={"CONTENT_BLOCKED": 0.1})
    """

    #: Answer 429 with the gateway's rate-limit body.
    rate_429: float = attrs.field(default=0.0, validator=_probability)
    #: Answer 500 with a JSON error body.
    rate_500: float = attrs.field(default=0.0, validator=_probability)
    #: Answer 502 with a proxy's HTML page.
    rate_502: float = attrs.field(default=0.0, validator=_probability)
    #: Answer 503 with a JSON error body.
    rate_503: float = attrs.field(default=0.0, validator=_probability)
    #: Drop the connection without any reply.
    rate_reset: float = attrs.field(default=0.0, validator=_probability)
    #: Do the work, then wait :attr:`slow_seconds` before replying.
    rate_slow: float = attrs.field(default=0.0, validator=_probability)
    #: Answer HTTP 200 with text that is not JSON (API calls only).
    rate_malformed: float = attrs.field(default=0.0, validator=_probability)
    #: Send the full ``Content-Length`` but only part of the image, then close (images only).
    rate_truncated: float = attrs.field(default=0.0, validator=_probability)
    #: ``Retry-After`` seconds sent with a 429 (fractions are sent as written, e.g. ``0.5``),
    #: or None to send no header.
    retry_after: float | None = attrs.field(default=1.0, validator=_non_negative)
    #: Real seconds (not scaled by ``time_scale``) a slow reply waits.
    slow_seconds: float = attrs.field(default=5.0, validator=_non_negative)
    #: Probability that a job ends failed, per error type (e.g. ``{"INFERENCE_FAILURE": 0.1}``).
    job_failure_rates: Mapping[str, float] = attrs.field(
        factory=dict, converter=_freeze_rates, validator=_check_rates, hash=False
    )
    #: Which request kinds the HTTP faults apply to.
    calls: frozenset[str] = attrs.field(default=CALLS, converter=frozenset, validator=_check_calls)

    def http_rates(self, kind: str) -> tuple[tuple[str, float], ...]:
        """The ``(fault, rate)`` pairs that apply to one request kind, in drawing order."""
        if kind not in self.calls:
            return ()
        pairs = [
            ("reset", self.rate_reset),
            ("429", self.rate_429),
            ("503", self.rate_503),
            ("500", self.rate_500),
            ("502", self.rate_502),
        ]
        if kind != "image":
            pairs.append(("malformed", self.rate_malformed))
        pairs.append(("slow", self.rate_slow))
        if kind == "image":
            pairs.append(("truncated", self.rate_truncated))
        return tuple((name, rate) for name, rate in pairs if rate > 0)


def _literal(choices: tuple[str, ...]) -> Any:
    return attrs.validators.in_(choices)


@attrs.frozen(kw_only=True)
class EmulatorConfig:
    """How an :class:`Emulator` behaves. Every field has a default that mimics the documented API.

    Times: ``job_seconds`` is the median run time of a job in *emulated* seconds; the server
    waits ``emulated × time_scale`` real seconds, so ``time_scale=0.01`` runs a 20 s job in
    0.2 s while ``metrics.inference_time`` still reports 20.

    Prompt directives make single jobs deterministic: a prompt containing ``[duration:12.5]``
    runs 12.5 emulated seconds, and ``[fail:CONTENT_BLOCKED]`` ends failed with that error type
    (any of INFERENCE_FAILURE, INFERENCE_TIMEOUT, REQUEST_INVALID, CONTENT_BLOCKED,
    INTERNAL_SERVER_ERROR).

    Example::

        EmulatorConfig(workers=4, job_seconds=20, duration_sigma=0.3, time_scale=0.01)
        EmulatorConfig(api_key="secret", credits=10, result_shape="openai_b64")
    """

    #: Interface both origins listen on.
    host: str = "127.0.0.1"
    #: API port; 0 picks a free one.
    port: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    #: CDN (image) port; 0 picks a free one.
    cdn_port: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    #: Path before ``/v1/queue/{model}``; :attr:`Emulator.base_url` ends with it.
    prefix: str = attrs.field(default=DEFAULT_PREFIX, validator=_check_prefix)
    #: The one accepted key, or None to accept any non-empty key.
    api_key: str | None = None
    #: Credits to spend (a submit costs ``n``), or None for unlimited.
    credits: int | None = attrs.field(default=None, validator=_non_negative)
    #: Jobs that run at once (FIFO queue behind them), or None to start every job at submit.
    workers: int | None = attrs.field(default=None, validator=_positive_int)
    #: Median emulated run time of a job, in seconds.
    job_seconds: float = attrs.field(default=0.0, validator=_non_negative)
    #: Log-normal spread of run times around the median; 0 makes every job take job_seconds.
    duration_sigma: float = attrs.field(default=0.0, validator=_non_negative)
    #: Real seconds per emulated second.
    time_scale: float = attrs.field(default=1.0, validator=_non_negative)
    #: Seeds the run-time, job-failure and fault RNGs (each its own stream).
    seed: int = 0
    #: ``documented`` (request id and three URLs) or ``terse`` (request id and status only).
    submit_shape: SubmitShape = attrs.field(default="documented", validator=_literal(SUBMIT_SHAPES))
    #: ``upper`` (IN_QUEUE…), ``lower`` (in_queue…) or ``aliases`` (PENDING, PROCESSING,
    #: COMPLETED, FAILED, CANCELLED).
    status_spelling: StatusSpelling = attrs.field(
        default="upper", validator=_literal(STATUS_SPELLINGS)
    )
    #: ``string`` (``error`` + ``error_type``) or ``object`` (``error: {code, message}`` +
    #: ``provider_error``, with the error type as the code).
    error_style: ErrorStyle = attrs.field(default="string", validator=_literal(ERROR_STYLES))
    #: Add ``progress`` (0..1) to running status replies.
    progress: bool = False
    #: Result of an unfinished job: ``202`` with the status body, or ``400`` with a detail.
    not_ready_style: NotReadyStyle = attrs.field(
        default="202", validator=_literal(NOT_READY_STYLES)
    )
    #: Shape of a successful result body (see ``tests/data/result.*.json``).
    result_shape: ResultShape = attrs.field(default="outputs", validator=_literal(RESULT_SHAPES))
    #: Pad every image to about this many bytes (png, jpeg, webp), or None for natural size.
    image_bytes: int | None = attrs.field(default=None, validator=_non_negative)
    #: One image per format and size for every job, drawn once (for benchmarks), instead of
    #: each job's own colours and the start of its prompt.
    same_images: bool = False
    #: Injected failures.
    faults: Faults = attrs.field(factory=Faults)
