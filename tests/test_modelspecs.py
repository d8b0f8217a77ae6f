"""The model family's rules: each known model accepts exactly its documented ranges, others pass.

The documented rules are written out again here, from PROTOCOL.md's "The model family",
rather than read from ``odiqueue._modelspecs``: a table that got a rule wrong must meet a
test that did not.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from odiqueue import ImageRequest, InvalidParameterError
from odiqueue._modelspecs import MODELS, model_violations

PROFILE = settings(
    derandomize=os.environ.get("HYPOTHESIS_PROFILE", "ci") != "long",
    max_examples=5000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

FIXED = {"1024x1024", "1024x1536", "1536x1024", "auto"}
EDITS = {"gpt_image_1_edit", "gpt_image_2_edit"}
CUSTOM_SIZES = {"gpt_image_2", "gpt_image_2_edit"}
NO_TRANSPARENT = {"gpt_image_2", "gpt_image_2_edit"}
FIDELITY = {"gpt_image_1_edit"}
MAX_IMAGES = {"gpt_image_2_edit": 16}
KNOWN = ["gpt_image_1", "gpt_image_1_edit", "gpt_image_2", "gpt_image_2_edit"]
UNKNOWN = ["gpt_image_3", "flux_pro_edit", "seedream-4.0"]


def documented_custom_size(width: int, height: int) -> bool:
    """gpt_image_2's documented rule for a custom WIDTHxHEIGHT."""
    return (
        width % 16 == 0
        and height % 16 == 0
        and max(width, height) <= 3840
        and max(width, height) / min(width, height) <= 3
        and 655_360 <= width * height <= 8_294_400
    )


def expected_problems(model: str, fields: dict[str, Any]) -> set[str]:
    """The fields the documentation says ``model`` refuses (empty: the request is valid)."""
    bad: set[str] = set()
    size = fields.get("size")
    if size is not None and size not in FIXED:
        width, height = (int(side) for side in size.split("x"))
        if model not in KNOWN:
            pass  # an unknown model: passed through as given
        elif model not in CUSTOM_SIZES or not documented_custom_size(width, height):
            bad.add("size")
    if model not in KNOWN:
        return bad
    if fields.get("background") == "transparent" and model in NO_TRANSPARENT:
        bad.add("background")
    images = fields.get("images")
    if model in EDITS:
        if not images or len(images) > MAX_IMAGES.get(model, 10**6):
            bad.add("images")
    else:
        if images is not None:
            bad.add("images")
        if fields.get("mask") is not None:
            bad.add("mask")
    if fields.get("input_fidelity") is not None and model not in FIDELITY:
        bad.add("input_fidelity")
    return bad


sides = st.integers(1, 5000) | st.integers(10, 300).map(lambda k: k * 16)
sizes = (
    st.none() | st.sampled_from(sorted(FIXED)) | st.builds(lambda w, h: f"{w}x{h}", sides, sides)
)
references = st.sampled_from(["https://shop.example/a.jpg", "photos/b.png", "/srv/c.webp"])
request_fields = st.fixed_dictionaries(
    {},
    optional={
        "size": sizes,
        "background": st.sampled_from(["transparent", "opaque", "auto"]),
        "images": st.lists(references, min_size=0, max_size=20),
        "mask": references,
        "input_fidelity": st.sampled_from(["high", "low"]),
    },
)


@PROFILE
@given(st.sampled_from(KNOWN + UNKNOWN), request_fields)
@example("gpt_image_2", {"size": "3840x1280"})  # the longest side and the ratio at their limits
@example("gpt_image_2", {"size": "3840x1264"})  # ratio just over 3:1
@example("gpt_image_2", {"size": "3840x2176"})  # 8,355,840 pixels: just over the most
@example("gpt_image_2", {"size": "1024x640"})  # 655,360 pixels: the fewest allowed
@example("gpt_image_2", {"size": "1008x640"})  # just under the fewest
@example("gpt_image_2", {"size": "3856x2048"})  # a side over 3840
@example("gpt_image_2_edit", {"images": ["a.png"] * 16})
@example("gpt_image_2_edit", {"images": ["a.png"] * 17})
@example("gpt_image_1", {"size": "2048x1152"})
def test_each_model_accepts_exactly_its_documented_ranges(
    model: str, fields: dict[str, Any]
) -> None:
    """A request for a model builds iff the documented table allows it; else the error names
    the model and one of the fields the table refuses."""
    problems = expected_problems(model, fields)
    if problems:
        with pytest.raises(InvalidParameterError) as caught:
            ImageRequest("a product photo", model=model, **fields)
        assert caught.value.field in problems
        assert caught.value.model == model
        assert model in str(caught.value)
        return
    request = ImageRequest("a product photo", model=model, **fields)
    assert request.model == model
    assert (None if request.size is None else str(request.size)) == fields.get("size")


@PROFILE
@given(st.sampled_from(KNOWN + UNKNOWN), request_fields)
def test_the_client_side_check_matches_the_request_naming_its_model(
    model: str, fields: dict[str, Any]
) -> None:
    """A request without a model, checked for one (as the client does when sending it),
    is refused for exactly the fields a request naming that model is refused for."""
    if "size" in expected_problems("gpt_image_2", fields):
        # Without a model, a custom size that no model of the table takes is refused.
        with pytest.raises(InvalidParameterError) as refused:
            ImageRequest("a product photo", **fields)
        assert refused.value.field == "size"
        return
    request = ImageRequest("a product photo", **fields)
    problems = expected_problems(model, fields)
    if problems:
        with pytest.raises(InvalidParameterError) as caught:
            request.check_for(model)
        assert caught.value.field in problems
    else:
        request.check_for(model)


@pytest.mark.parametrize("model", UNKNOWN)
def test_unknown_models_pass_through_with_the_common_checks_only(model: str) -> None:
    """A model the table does not know takes any size form, inputs and fidelity as given,
    but the checks every model shares (here: the prompt) still apply."""
    request = ImageRequest(
        "x",
        model=model,
        size="640x480",
        background="transparent",
        images=["https://a.example/1.png"],
        mask="m.png",
        input_fidelity="high",
    )
    assert model_violations(model, request.rule_fields()) == []
    with pytest.raises(InvalidParameterError) as caught:
        ImageRequest("", model=model)
    assert caught.value.field == "prompt"


def test_the_table_lists_the_documented_models() -> None:
    """The four documented models are in the table, each with the rules the docs give."""
    assert sorted(MODELS) == KNOWN
    assert {name for name, spec in MODELS.items() if spec.edits} == EDITS
    assert {name for name, spec in MODELS.items() if spec.custom_sizes} == CUSTOM_SIZES
    assert {name for name, spec in MODELS.items() if not spec.transparent} == NO_TRANSPARENT


@pytest.mark.parametrize(
    ("model", "fields", "field", "words"),
    [
        ("gpt_image_2", {"background": "transparent"}, "background", "not supported"),
        ("gpt_image_1", {"size": "2048x1152"}, "size", "1024x1536"),
        ("gpt_image_2", {"size": "2000x1000"}, "size", "multiples of 16"),
        ("gpt_image_2_edit", {"images": ["a.png"] * 17}, "images", "at most 16"),
        (
            "gpt_image_2_edit",
            {"images": ["a.png"], "input_fidelity": "high"},
            "input_fidelity",
            "gpt_image_1_edit",
        ),
        ("gpt_image_1", {"mask": "m.png"}, "mask", "gpt_image_1_edit"),
        ("gpt_image_1_edit", {}, "images", "required"),
    ],
)
def test_errors_name_model_field_value_and_rule(
    model: str, fields: dict[str, Any], field: str, words: str
) -> None:
    """Each refusal says which model, which field, what value and what the rule is."""
    with pytest.raises(InvalidParameterError) as caught:
        ImageRequest("x", model=model, **fields)
    message = str(caught.value)
    assert caught.value.field == field
    assert f"model {model}" in message
    assert message.startswith(f"{field}=")
    assert words in message
