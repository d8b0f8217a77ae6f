"""A batch's submit under 429s: the server's "slow down" is waited out, never an item's end.

A refused submit is never billed, so there is nothing to lose by waiting and an item that
failed for it would only have to be run again. The client's retry policy already retries a
429 a few times; when it gives up (its attempts spent, or a ``Retry-After`` longer than
``RetryPolicy.max_retry_after``), the item waits here and asks again: each wait is the
server's ``Retry-After`` or the backoff, at most ``max_retry_after``, and the batch's rate
halves. The wait ends early only when the batch stops submitting (a fatal error), or when
the batch itself is left or cancelled.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from odiqueue import _backoff
from odiqueue._batch._throttle import RateLimiter
from odiqueue._errors import OdiqueueError, RateLimitError
from odiqueue._models import JobHandle
from odiqueue._request import ImageRequest

if TYPE_CHECKING:
    from odiqueue._client import AsyncClient

__all__ = ["submit_patiently"]

log = logging.getLogger("odiqueue")


async def submit_patiently(
    client: AsyncClient,
    request: ImageRequest,
    rate: RateLimiter,
    *,
    key: str,
    stopped: Callable[[], OdiqueueError | None],
    rng: random.Random,
) -> JobHandle:
    """Submit ``request``, waiting out 429s; raises what ``stopped()`` returns once the batch
    stops submitting, and any other error of the submit as it is."""
    refusals = 0
    while True:
        refused = client.refused_submits
        try:
            handle = await client.submit(request)
        except RateLimitError as exc:
            rate.slow_down(_backoff.now())
            stop = stopped()
            if stop is not None:
                raise stop from exc
            refusals += 1
            policy = client.retry_policy
            wait = exc.retry_after
            if wait is None:
                wait = _backoff.retry_delay(refusals, policy, rng)
            wait = min(wait, policy.max_retry_after)
            log.info(
                "item %s: the API refused the submit (429, not billed): asking again in %.1fs",
                key,
                wait,
            )
            await _backoff.sleep(wait)
            await rate.acquire()
            continue
        if client.refused_submits > refused:
            rate.slow_down(_backoff.now())
        else:
            rate.recover()
        return handle
