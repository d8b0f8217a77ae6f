"""A floor under a download's pace: a host that trickles bytes must not hold a run.

The wait for each piece is bounded by the read timeout, and the whole download by
``DownloadPolicy.total`` (a cancel scope around it, in :meth:`AsyncClient.download`); this
is the third bound: once ``DownloadPolicy.grace`` seconds have passed, the bytes must have
come at ``DownloadPolicy.min_rate`` a second on average, or the download ends at once, not
after the total bound.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from odiqueue import _backoff
from odiqueue._config import DownloadPolicy
from odiqueue._errors import RequestTimeoutError

__all__ = ["paced"]


async def paced(
    chunks: AsyncIterator[bytes], policy: DownloadPolicy, *, host: str, request_id: str | None
) -> AsyncIterator[bytes]:
    """``chunks``, raising :class:`RequestTimeoutError` once they come too slowly."""
    floor = policy.min_rate
    if floor is None:
        async for chunk in chunks:
            yield chunk
        return
    started = _backoff.now()
    check_from = started + policy.grace
    got = 0
    async for chunk in chunks:
        got += len(chunk)
        now = _backoff.now()
        if now > check_from and got < floor * (now - started):
            raise RequestTimeoutError(
                f"the image from {host} comes too slowly: {got} bytes in "
                f"{now - started:.0f}s, under the minimum of {floor:g} bytes/s",
                request_id=request_id,
            )
        yield chunk
