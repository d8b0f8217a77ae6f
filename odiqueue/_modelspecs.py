"""The model family on the queue, and each model's rules: the one table everything consults.

The same four queue endpoints serve several models (``/v1/queue/<model>``); they share the
gpt_image_1 fields (prompt, n, quality, output_format, output_compression, moderation, user)
and differ in what is listed here. The request (``_request``), the client's submit, the
command line's row checks and the emulator all read :data:`MODELS` and
:func:`model_violations`, so a rule is written once.

A model name that is not in the table is allowed (new models appear monthly): only the
common checks apply and its fields are sent as given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs

__all__ = [
    "FIXED_SIZES",
    "MAX_INPUT_IMAGES",
    "MODELS",
    "ModelSpec",
    "Violation",
    "custom_size_rule",
    "model_violations",
    "parse_size",
    "size_allowed",
    "spec_for",
]

#: The sizes every model of the family takes (``auto`` lets the model choose).
FIXED_SIZES: Final = ("1024x1024", "1024x1536", "1536x1024", "auto")
#: The most input images gpt_image_2_edit takes in one request.
MAX_INPUT_IMAGES: Final = 16

# gpt_image_2's custom sizes (documented): WIDTHxHEIGHT with both sides multiples of 16, the
# longest side at most 3840, an aspect ratio at most 3:1, 655,360 to 8,294,400 pixels.
SIZE_STEP: Final = 16
MAX_SIDE: Final = 3840
MAX_RATIO: Final = 3
MIN_PIXELS: Final = 655_360
MAX_PIXELS: Final = 8_294_400

_WXH: Final = re.compile(r"([1-9][0-9]{0,5})x([1-9][0-9]{0,5})")


@attrs.frozen(kw_only=True)
class ModelSpec:
    """What one model of the family takes beyond the common fields."""

    #: The model's name, as in the queue's path (``gpt_image_2_edit``).
    name: str
    #: Whether it edits input images: ``images`` required, ``mask`` allowed.
    edits: bool = False
    #: The most input images in one request, when documented.
    max_images: int | None = None
    #: Whether ``size`` may be a custom ``WIDTHxHEIGHT`` (see :func:`custom_size_rule`).
    custom_sizes: bool = False
    #: Whether ``background: transparent`` is supported.
    transparent: bool = True
    #: Whether ``input_fidelity`` (``high`` or ``low``) is taken.
    input_fidelity: bool = False

    @property
    def size_rule(self) -> str:
        """The sizes it takes, in words."""
        fixed = ", ".join(FIXED_SIZES)
        if self.custom_sizes:
            return f"{fixed}, or a custom WIDTHxHEIGHT ({custom_size_rule()})"
        return f"one of {fixed}"


#: The documented models, by name (see the README's "Models and edits").
MODELS: Final[Mapping[str, ModelSpec]] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            ModelSpec(name="gpt_image_1"),
            ModelSpec(name="gpt_image_1_edit", edits=True, input_fidelity=True),
            ModelSpec(name="gpt_image_2", custom_sizes=True, transparent=False),
            ModelSpec(
                name="gpt_image_2_edit",
                edits=True,
                max_images=MAX_INPUT_IMAGES,
                custom_sizes=True,
                transparent=False,
            ),
        )
    }
)


def spec_for(model: str) -> ModelSpec | None:
    """The rules of ``model``, or None for a model the table does not know."""
    return MODELS.get(model)


@attrs.frozen
class Violation:
    """One rule a request breaks for one model: the field, its value and the rule."""

    model: str
    field: str
    value: object
    rule: str

    def __str__(self) -> str:
        return f"{self.model}: {self.field}={self.value!r} is not allowed: {self.rule}"


def parse_size(text: str) -> tuple[int, int] | None:
    """``(width, height)`` of a ``WIDTHxHEIGHT`` text, or None when it has another form."""
    match = _WXH.fullmatch(text)
    return None if match is None else (int(match.group(1)), int(match.group(2)))


def custom_size_rule() -> str:
    """gpt_image_2's rule for custom sizes, in words."""
    return (
        f"both sides multiples of {SIZE_STEP}, the longest at most {MAX_SIDE}, an aspect "
        f"ratio at most {MAX_RATIO}:1, {MIN_PIXELS:,} to {MAX_PIXELS:,} pixels"
    )


def _custom_size_ok(width: int, height: int) -> bool:
    return (
        width % SIZE_STEP == 0
        and height % SIZE_STEP == 0
        and max(width, height) <= MAX_SIDE
        and max(width, height) <= MAX_RATIO * min(width, height)
        and MIN_PIXELS <= width * height <= MAX_PIXELS
    )


def size_allowed(spec: ModelSpec, size: str) -> bool:
    """Whether the model takes ``size`` (a fixed size, or a valid custom one if it may)."""
    if size in FIXED_SIZES:
        return True
    parsed = parse_size(size) if spec.custom_sizes else None
    return parsed is not None and _custom_size_ok(*parsed)


def model_violations(model: str, fields: Mapping[str, Any]) -> list[Violation]:
    """Every rule of ``model`` that ``fields`` (the request as on the wire) breaks.

    Only the model-specific rules: the common ones (prompt, n, quality...) are the
    request's own. An unknown model breaks none. ``images`` is the list of references (or
    absent), ``mask`` a reference (or absent).
    """
    spec = MODELS.get(model)
    if spec is None:
        return []
    found: list[Violation] = []

    def bad(field: str, rule: str) -> None:
        found.append(Violation(model, field, fields.get(field), rule))

    size = fields.get("size")
    if isinstance(size, str) and not size_allowed(spec, size):
        bad("size", spec.size_rule)
    if fields.get("background") == "transparent" and not spec.transparent:
        bad("background", "transparent is not supported: use opaque or auto")
    images = fields.get("images")
    if spec.edits:
        count = len(images) if isinstance(images, (list, tuple)) else 0
        if images is None or count == 0:
            limit = f"1 to {spec.max_images}" if spec.max_images else "one or more"
            bad("images", f"{limit} input image references are required for an edit")
        elif spec.max_images is not None and count > spec.max_images:
            found.append(
                Violation(model, "images", f"{count} images", f"at most {spec.max_images}")
            )
    else:
        edit_model = f"{model}_edit" if f"{model}_edit" in MODELS else "an _edit model"
        if images is not None:
            bad("images", f"input images need an edit model ({edit_model})")
        if fields.get("mask") is not None:
            bad("mask", f"a mask needs an edit model ({edit_model})")
    if fields.get("input_fidelity") is not None and not spec.input_fidelity:
        takers = ", ".join(s.name for s in MODELS.values() if s.input_fidelity)
        bad("input_fidelity", f"not taken by this model (only by {takers})")
    return found
