"""A batch's input: items read lazily, one at a time and numbered, by whichever of the
batch's workers is free."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any, Final

import anyio
import anyio.lowlevel

from odiqueue._keys import Item

__all__ = ["Feed"]


class Feed:
    """The batch's items, read one at a time (and numbered) by whichever worker is free."""

    def __init__(self, items: Iterable[Item] | AsyncIterable[Item]) -> None:
        self._sync: Iterator[Item] | None = None
        self._async: AsyncIterator[Item] | None = None
        if isinstance(items, AsyncIterable):
            self._async = aiter(items)
        else:
            self._sync = iter(items)
        # An async iterator must not be asked again before its last answer.
        self._lock = anyio.Lock()
        self._index = -1
        self._done = False

    async def next(self) -> tuple[Item, int] | None:
        """The next item and its index, or None once there are no more (the iterator is
        not asked again after its end: not every iterator stays ended)."""
        if self._sync is not None:
            await anyio.lowlevel.checkpoint_if_cancelled()
            item = _END if self._done else next(self._sync, _END)
        else:
            assert self._async is not None
            async with self._lock:
                item = _END if self._done else await anext(self._async, _END)
        if item is _END:
            self._done = True
            return None
        self._index += 1
        return item, self._index


_END: Final[Any] = object()
