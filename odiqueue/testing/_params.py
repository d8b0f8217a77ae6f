"""Checking a submit body against the documented parameter table, and reading prompt directives.

Errors come back in the fal/pydantic form the real service uses for 422 replies:
``{"loc": ["body", field], "msg": ..., "type": ...}``, all of them at once, not just the first.
Unknown fields are accepted, as the real API does. Each model's own rules (sizes, background,
input images) come from the one model table, ``odiqueue._modelspecs``; a model the table
does not know gets the common checks only.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from odiqueue._modelspecs import FIXED_SIZES, model_violations, parse_size, spec_for
from odiqueue.testing._config import FAILURE_TYPES
from odiqueue.testing._edits import reference_errors

__all__ = ["Directives", "read_directives", "validate"]

_MAX_PROMPT = 32000

_CHOICES: dict[str, tuple[str, ...]] = {
    "quality": ("low", "medium", "high", "auto"),
    "background": ("transparent", "opaque", "auto"),
    "output_format": ("png", "jpeg", "webp"),
    "moderation": ("auto", "low"),
    "input_fidelity": ("high", "low"),
}

_INT_RANGES: dict[str, tuple[int, int]] = {"n": (1, 10), "output_compression": (0, 100)}

_DURATION = re.compile(r"\[duration:\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*\]")
_FAIL = re.compile(r"\[fail:\s*([A-Za-z_]+)\s*\]")


@attrs.frozen(kw_only=True)
class Directives:
    """What a prompt asks of the emulator: a fixed emulated duration and/or a failure type."""

    duration: float | None = None
    fail: str | None = None


def read_directives(prompt: str) -> Directives:
    """Find ``[duration:S]`` and ``[fail:TYPE]`` in a prompt (the first of each counts)."""
    if "[" not in prompt:  # the common case, without running two regexes
        return Directives()
    duration = _DURATION.search(prompt)
    fail = _FAIL.search(prompt)
    return Directives(
        duration=float(duration.group(1)) if duration else None,
        fail=fail.group(1).upper() if fail else None,
    )


def _error(field: str | None, msg: str, kind: str) -> dict[str, Any]:
    loc: list[str] = ["body"] if field is None else ["body", field]
    return {"loc": loc, "msg": msg, "type": kind}


def json_error(reason: str) -> list[dict[str, Any]]:
    """The 422 detail for a body that is not JSON at all."""
    return [_error(None, f"JSON decode error: {reason}", "json_invalid")]


def validate(
    body: object, model: str = "gpt_image_1", *, accept_inline: bool = True
) -> list[dict[str, Any]]:
    """Every rule the submit body breaks for ``model``, in field order; an empty list means
    it is valid. ``accept_inline``: whether inline image data (base64, data: URIs) is taken."""
    if not isinstance(body, dict):
        return [_error(None, "Input should be a valid dictionary", "dict_type")]
    errors: list[dict[str, Any]] = []
    _check_prompt(body, errors)
    spec = spec_for(model)
    fixed_only = spec is not None and not spec.custom_sizes
    errors_before = len(errors)
    if "size" in body:
        size = body["size"]
        if not isinstance(size, str):
            errors.append(_error("size", "Input should be a valid string", "string_type"))
        elif size not in FIXED_SIZES and (fixed_only or parse_size(size) is None):
            listed = ", ".join(repr(c) for c in FIXED_SIZES[:-1]) + f" or {FIXED_SIZES[-1]!r}"
            errors.append(_error("size", f"Input should be {listed}", "literal_error"))
    for field, (low, high) in _INT_RANGES.items():
        if field in body:
            _check_int(field, body[field], low, high, errors)
    for field, choices in _CHOICES.items():
        if field in body and body[field] not in choices:
            listed = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
            errors.append(_error(field, f"Input should be {listed}", "literal_error"))
    if "user" in body and not isinstance(body["user"], str):
        errors.append(_error("user", "Input should be a valid string", "string_type"))
    if body.get("background") == "transparent" and body.get("output_format", "png") == "jpeg":
        errors.append(
            _error(
                "background",
                "Value error, a transparent background needs output_format png or webp",
                "value_error",
            )
        )
    size_reported = any(e["loc"] == ["body", "size"] for e in errors[errors_before:])
    for violation in model_violations(model, body):
        if violation.field == "size" and size_reported:
            continue  # the literal error above says it
        errors.append(
            _error(violation.field, f"Value error, {model}: {violation.rule}", "value_error")
        )
    errors.extend(reference_errors(body, accept_inline=accept_inline))
    return errors


def _check_prompt(body: dict[str, Any], errors: list[dict[str, Any]]) -> None:
    if "prompt" not in body:
        errors.append(_error("prompt", "Field required", "missing"))
        return
    prompt = body["prompt"]
    if not isinstance(prompt, str):
        errors.append(_error("prompt", "Input should be a valid string", "string_type"))
    elif not prompt:
        errors.append(
            _error("prompt", "String should have at least 1 character", "string_too_short")
        )
    elif len(prompt) > _MAX_PROMPT:
        errors.append(
            _error(
                "prompt", f"String should have at most {_MAX_PROMPT} characters", "string_too_long"
            )
        )
    else:
        fail = read_directives(prompt).fail
        if fail is not None and fail not in FAILURE_TYPES:
            # Not a rule of the real API: a typo in a test's directive should not pass silently.
            errors.append(
                _error(
                    "prompt",
                    f"Value error, unknown [fail:{fail}] directive; "
                    f"use one of {sorted(FAILURE_TYPES)}",
                    "value_error",
                )
            )


def _check_int(
    field: str, value: object, low: int, high: int, errors: list[dict[str, Any]]
) -> None:
    # bool is an int in Python but not in JSON.
    if not isinstance(value, int) or isinstance(value, bool):
        errors.append(_error(field, "Input should be a valid integer", "int_type"))
    elif value < low:
        errors.append(
            _error(field, f"Input should be greater than or equal to {low}", "greater_than_equal")
        )
    elif value > high:
        errors.append(
            _error(field, f"Input should be less than or equal to {high}", "less_than_equal")
        )
