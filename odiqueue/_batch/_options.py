"""The knobs of a batch, checked when they are set."""

from __future__ import annotations

from typing import Any, Final

import attrs

from odiqueue._errors import ConfigurationError
from odiqueue._naming import DEFAULT_TEMPLATE, check_template

__all__ = [
    "DEFAULT_CANCEL_TIMEOUT",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_JOB_RETRIES",
    "DEFAULT_POLL_CONCURRENCY",
    "BatchOptions",
]

DEFAULT_MAX_IN_FLIGHT: Final = 64
DEFAULT_POLL_CONCURRENCY: Final = 32
DEFAULT_MAX_JOB_RETRIES: Final = 2
DEFAULT_CANCEL_TIMEOUT: Final = 10.0


def _at_least_one(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not value >= 1:
        raise ConfigurationError(f"{attribute.name} must be at least 1, got {value!r}")


def _positive(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not value > 0:
        raise ConfigurationError(f"{attribute.name} must be above 0 (or None), got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not value >= 0:
        raise ConfigurationError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class BatchOptions:
    """The knobs of :meth:`AsyncClient.generate_many` (see there)."""

    max_in_flight: int = attrs.field(default=DEFAULT_MAX_IN_FLIGHT, validator=_at_least_one)
    submit_rate: float | None = attrs.field(default=None, validator=_positive)
    submit_burst: int = attrs.field(default=8, validator=_at_least_one)
    poll_concurrency: int = attrs.field(default=DEFAULT_POLL_CONCURRENCY, validator=_at_least_one)
    max_job_retries: int = attrs.field(default=DEFAULT_MAX_JOB_RETRIES, validator=_non_negative)
    deadline: float | None = attrs.field(default=None, validator=_non_negative)
    name_template: str = attrs.field(default=DEFAULT_TEMPLATE, converter=check_template)
    overwrite: bool = False
    resume: bool = True
    keep_remote: bool = False
    cancel_timeout: float = attrs.field(default=DEFAULT_CANCEL_TIMEOUT, validator=_non_negative)
