"""What an image costs, as an estimate: a price table per model, quality and size.

The defaults are OpenAI's published list prices for gpt-image-1 (see ``PRICES_AS_OF``);
the providers do not publish their own, so every figure is an estimate and says so. Edits
are priced as the images they make. A request the table cannot price (a model it does not
know, a custom size) is priced ``None``: counted and named, never taken as free.

A quality or size left to the server (``auto``, or not set) is priced at the most
expensive choice the server may make, so an estimate never undercounts and a budget cap is
never passed because of it.

A price file (``--prices FILE`` or ``$ODIQUEUE_PRICES``; JSON, or TOML) maps a model to
qualities to sizes, ``"*"`` standing for any size; it is laid over the defaults::

    {"gpt_image_2": {"low": {"*": 0.01}, "medium": {"*": 0.04}, "high": {"*": 0.17}}}
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from odiqueue._errors import ConfigurationError
from odiqueue._request import ImageRequest, Quality, Size
from odiqueue._wire import request_to_json

__all__ = ["DEFAULT_PRICES", "ENV_PRICES", "PRICES_AS_OF", "PriceTable", "load_prices"]

ENV_PRICES: Final = "ODIQUEUE_PRICES"
#: When the default prices were read off OpenAI's price list.
PRICES_AS_OF: Final = "2026-11-30"
_ANY_SIZE: Final = "*"
_SQUARE: Final = {"low": 0.011, "medium": 0.042, "high": 0.167}
_OBLONG: Final = {"low": 0.016, "medium": 0.063, "high": 0.25}
_GPT_IMAGE_1: Final = {
    quality: {
        "1024x1024": _SQUARE[quality],
        "1024x1536": _OBLONG[quality],
        "1536x1024": _OBLONG[quality],
    }
    for quality in _SQUARE
}
#: model -> quality -> size -> US dollars per image.
DEFAULT_PRICES: Final[Mapping[str, Mapping[str, Mapping[str, float]]]] = {
    "gpt_image_1": _GPT_IMAGE_1,
    "gpt_image_1_edit": _GPT_IMAGE_1,
}


@attrs.frozen
class PriceTable:
    """Prices per model, quality and size (US dollars per image, estimates).

    >>> PriceTable().estimate(ImageRequest("a mug", quality="low", size="1024x1024", n=2),
    ...                       "gpt_image_1")
    0.022
    """

    prices: Mapping[str, Mapping[str, Mapping[str, float]]] = DEFAULT_PRICES
    #: Where the prices came from (shown beside every estimate).
    source: str = f"OpenAI list prices for gpt-image-1 as of {PRICES_AS_OF}"

    def unit_price(self, model: str, quality: str | None, size: str | None) -> float | None:
        """One image's price, or None when the table cannot say."""
        qualities = self.prices.get(model)
        if not qualities:
            return None
        asked = [quality] if quality and quality != Quality.AUTO.value else list(qualities)
        prices = []
        for name in asked:
            sizes = qualities.get(name)
            if not sizes:
                return None
            price = _size_price(sizes, size)
            if price is None:
                return None
            prices.append(price)
        return max(prices) if prices else None

    def estimate(self, request: ImageRequest, model: str) -> float | None:
        """What ``request`` costs on ``model`` (all its images), or None."""
        return self.estimate_body(request_to_json(request), model)

    def estimate_body(self, body: Mapping[str, Any], model: str) -> float | None:
        """:meth:`estimate` for a request as it was sent (a manifest keeps that form)."""
        quality, size, count = body.get("quality"), body.get("size"), body.get("n", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            return None
        unit = self.unit_price(
            model,
            quality if isinstance(quality, str) else None,
            size if isinstance(size, str) else None,
        )
        return None if unit is None else round(unit * count, 6)


def _size_price(sizes: Mapping[str, float], size: str | None) -> float | None:
    if size and size != Size.AUTO.value:
        return sizes.get(size, sizes.get(_ANY_SIZE))
    return max(sizes.values()) if sizes else None


def load_prices(path: str | os.PathLike[str] | None = None) -> PriceTable:
    """The default table, with the file at ``path`` (or ``$ODIQUEUE_PRICES``) laid over it.

    Raises :class:`~odiqueue.ConfigurationError` naming the file and what is wrong.
    """
    if path is None:
        path = os.environ.get(ENV_PRICES) or None
    if path is None:
        return PriceTable()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"prices file {file}: cannot be read ({exc})") from None
    data = _parse(file, text)
    merged: dict[str, dict[str, dict[str, float]]] = {
        model: {q: dict(s) for q, s in qualities.items()}
        for model, qualities in DEFAULT_PRICES.items()
    }
    for model, qualities in _mapping(file, data, "the file").items():
        for quality, sizes in _mapping(file, qualities, model).items():
            target = merged.setdefault(str(model), {}).setdefault(str(quality), {})
            for size, price in _mapping(file, sizes, f"{model}.{quality}").items():
                target[str(size)] = _price(file, price, f"{model}.{quality}.{size}")
    return PriceTable(merged, source=f"{file} over the defaults")


def _parse(file: Path, text: str) -> Any:
    if file.suffix.lower() == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib

            try:
                return tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigurationError(f"prices file {file}: not TOML ({exc})") from None
        raise ConfigurationError(f"prices file {file}: TOML needs Python 3.11; use JSON")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"prices file {file}: not JSON ({exc})") from None


def _mapping(file: Path, value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"prices file {file}: {where} must map names to prices, got {value!r:.60}"
        )
    return value


def _price(file: Path, value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"prices file {file}: {where} must be a number, got {value!r:.40}")
    if not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"prices file {file}: {where} must be 0 or more, got {value}")
    return float(value)
