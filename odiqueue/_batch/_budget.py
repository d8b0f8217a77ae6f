"""A batch's caps on what it pays for: images, and estimated dollars.

Each submit first takes its images and its estimate from the budget; the check and the
taking happen with no await between them, so however many workers submit at once the
batch never passes a cap. Jobs that earlier runs in the folder paid for count too (from
their manifest lines), so a rerun with the same cap does not start over, and one with a
higher cap continues. Once a submit is refused, every later one is too: the batch stops
at the cap rather than squeezing a smaller item in.
"""

from __future__ import annotations

from collections.abc import Mapping

from odiqueue._batch._records import KeyState
from odiqueue._config import BatchOptions
from odiqueue._errors import BudgetExceededError
from odiqueue._request import ImageRequest

__all__ = ["Budget"]


class Budget:
    """What a batch has paid for so far, and what it may still pay for."""

    def __init__(self, options: BatchOptions, model: str) -> None:
        self._max_images = options.max_images
        self._max_cost = options.max_cost
        self._prices = options.prices
        self._model = model
        #: Images and estimated dollars paid for, by this run and earlier ones.
        self.images = 0
        self.cost = 0.0
        #: Jobs whose price the table does not know (counted, never taken as free).
        self.unpriced = 0
        self._stopped: BudgetExceededError | None = None

    def count_earlier(self, states: Mapping[str, KeyState]) -> None:
        """Count the jobs earlier runs in the folder paid for (one per key: its last)."""
        for state in states.values():
            if state.handle is not None and state.request is not None:
                model = state.model or self._model
                estimate = self._prices.estimate_body(state.request, model)
                count = state.request.get("n", 1)
                self._charge(count if isinstance(count, int) else 1, estimate)

    def estimate(self, request: ImageRequest) -> float | None:
        """What ``request`` is estimated to cost (None: the table cannot say)."""
        return self._prices.estimate(request, request.model or self._model)

    def take(self, request: ImageRequest) -> float | None:
        """Take ``request``'s images and estimate from the budget, returning the estimate.

        Raises :class:`BudgetExceededError` when it would pass a cap (and from then on).
        """
        if self._stopped is not None:
            raise self._stopped
        estimate = self.estimate(request)
        images = request.count
        if self._max_images is not None and self.images + images > self._max_images:
            self._stopped = BudgetExceededError(
                f"max_images={self._max_images} reached ({self.images} image(s) paid for): "
                "not submitted",
                cap="max_images",
                limit=self._max_images,
            )
        elif self._max_cost is not None and estimate is None:
            self._stopped = BudgetExceededError(
                f"max_cost={self._max_cost:g} is set, but the price table has no price for "
                f"this request on {self._model} (give one in a prices file): not submitted",
                cap="max_cost",
                limit=self._max_cost,
            )
        elif (
            self._max_cost is not None
            and estimate is not None
            # A hair of tolerance: sums of decimal prices are not exact in binary.
            and self.cost + estimate > self._max_cost + 1e-9
        ):
            self._stopped = BudgetExceededError(
                f"max_cost={self._max_cost:g} reached (${self.cost:.2f} estimated so far, "
                f"this item ${estimate:.2f}): not submitted",
                cap="max_cost",
                limit=self._max_cost,
            )
        if self._stopped is not None:
            raise self._stopped
        self._charge(images, estimate)
        return estimate

    def give_back(self, request: ImageRequest, estimate: float | None) -> None:
        """Return what :meth:`take` took for a submit the server refused (no job, no bill)."""
        self.images -= request.count
        if estimate is None:
            self.unpriced -= 1
        else:
            self.cost -= estimate

    def _charge(self, images: int, estimate: float | None) -> None:
        self.images += images
        if estimate is None:
            self.unpriced += 1
        else:
            self.cost += estimate
