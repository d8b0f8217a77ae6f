"""What a run will cost and may cost: the estimate a dry run prints, and the budget flags.

Prices come from :mod:`odiqueue._prices` (``--prices FILE`` laid over the defaults); every
figure is an estimate and is printed with where its prices came from.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable

import attrs

from odiqueue._models import BatchItem
from odiqueue._prices import PriceTable, load_prices
from odiqueue._request import ImageRequest

__all__ = ["Estimate", "budget_problem", "estimate", "price_table", "unpriced_under_cap"]


@attrs.define
class Estimate:
    """Images and estimated dollars of a list of requests, per model, quality and size."""

    #: (model, quality, size) -> [images, dollars or None when the table has no price]
    groups: dict[tuple[str, str, str], list[float | None]] = attrs.Factory(dict)

    @property
    def images(self) -> int:
        """All the images the requests ask for."""
        return sum(int(group[0] or 0) for group in self.groups.values())

    @property
    def total(self) -> float:
        """The estimated dollars of the priced requests."""
        return sum(group[1] or 0.0 for group in self.groups.values())

    @property
    def unpriced(self) -> list[str]:
        """The groups the table cannot price, as "model quality size"."""
        return [" ".join(key) for key, group in self.groups.items() if group[1] is None]

    def lines(self, source: str) -> list[str]:
        """The estimate as the lines a dry run prints."""
        out = [f"Estimated cost ({source}; estimates, not the provider's prices):"]
        for (model, quality, size), (images, dollars) in sorted(self.groups.items()):
            shown = "no price known" if dollars is None else f"${dollars:,.2f}"
            out.append(f"  {model} {quality} {size}: {int(images or 0)} image(s), {shown}")
        out.append(f"  total: {self.images} image(s), ${self.total:,.2f}")
        if self.unpriced:
            out.append(
                f"  not in the total: {', '.join(self.unpriced)} (give prices with --prices FILE)"
            )
        return out


def estimate(items: Iterable[BatchItem], model: str, table: PriceTable) -> Estimate:
    """Group ``items`` by model, quality and size, with their images and estimated cost."""
    result = Estimate()
    for item in items:
        request: ImageRequest = item.request
        key = (model, _shown(request.quality), _shown(request.size))
        group = result.groups.setdefault(key, [0, 0.0])
        group[0] = (group[0] or 0) + request.count
        price = table.estimate(request, model)
        group[1] = None if price is None or group[1] is None else group[1] + price
    return result


def _shown(value: object) -> str:
    return "auto" if value is None else str(value)


def price_table(args: argparse.Namespace) -> PriceTable:
    """The price table ``--prices`` (or ``$ODIQUEUE_PRICES``) asks for.

    Raises :class:`~odiqueue.ConfigurationError` with the file and what is wrong in it.
    """
    return load_prices(args.prices)


def budget_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with ``--max-images`` and ``--max-cost``, naming the flag."""
    if args.max_images is not None and args.max_images < 0:
        return f"--max-images {args.max_images}: must be 0 or more"
    if args.max_cost is not None and not (0 <= args.max_cost < math.inf):
        return f"--max-cost {args.max_cost}: must be a number of dollars, 0 or more"
    return None


def unpriced_under_cap(args: argparse.Namespace, found: Estimate) -> str | None:
    """A cap on cost cannot hold for requests without a price: say so before sending."""
    if args.max_cost is None or not found.unpriced:
        return None
    return (
        f"--max-cost {args.max_cost:g}: no price is known for {', '.join(found.unpriced)}; "
        "give them in a file with --prices FILE (or drop --max-cost)"
    )
