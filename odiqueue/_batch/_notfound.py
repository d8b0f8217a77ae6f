"""A 404 for a job this run created: a replica not caught up yet, not a job gone.

The batch paid for the job a moment ago and the server has not said it ended, so one 404
(on its response URL, its status URL, or its result) does not end it. The job's status is
asked again, with the retry policy's backoff, and it is followed on as soon as the server
knows it again. Only when it has stayed unknown for ``RetryPolicy.timeout`` seconds is the
item given up in this run, and its "submitted" line is left the last word of the manifest,
so a rerun fetches it by id: the job is never submitted again by the run that made it.

A job an earlier run made is another matter (see ``Batch._start_over``): a 404 there most
likely means it expired, and the item is submitted again.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

import attrs

from odiqueue import _backoff
from odiqueue._errors import NotFoundError
from odiqueue._models import JobHandle, JobStatus

if TYPE_CHECKING:
    from odiqueue._client import AsyncClient

__all__ = ["Unknown"]

log = logging.getLogger("odiqueue")


@attrs.define
class Unknown:
    """One job's spell of 404s: when it began, and how many re-asks it has cost."""

    since: float
    tries: int = 0

    async def recheck(
        self, client: AsyncClient, handle: JobHandle, rng: random.Random
    ) -> JobStatus | None:
        """Wait a backoff delay, then ask the job's status until the server knows it; the
        status, or None once the job has been unknown for ``RetryPolicy.timeout`` seconds."""
        policy = client.retry_policy
        while True:
            self.tries += 1
            wait = _backoff.retry_delay(self.tries, policy, rng)
            if _backoff.now() + wait - self.since > policy.timeout:
                return None
            log.info(
                "request %s: the server does not know it (404) though this run created it; "
                "asking its status again in %.2fs",
                handle.request_id,
                wait,
            )
            await _backoff.sleep(wait)
            try:
                return await client.status(handle)
            except NotFoundError:
                continue

    def given_up(self, handle: JobHandle, timeout: float) -> NotFoundError:
        """The item's error once the job stayed unknown too long."""
        return NotFoundError(
            f"the server did not know job {handle.request_id} for {timeout:g}s after creating "
            "it: not submitted again; a rerun in this folder fetches it by id",
            request_id=handle.request_id,
            status=404,
        )
