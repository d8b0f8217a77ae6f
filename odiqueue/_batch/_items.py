"""A batch's items: read lazily by whichever worker is free, and which item is which across runs.

Which item is which across runs: keys for batch items, and the checks on them.

An item's key is its identity in the manifest, so a rerun recognises it. A caller's own key
is used as given (and must be unique); otherwise the key is a hash of the request plus how
many identical requests came before it, which is stable as long as the input is.

A batch's input: items read lazily, one at a time and numbered, by whichever of the
batch's workers is free.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from typing import Any, Final

import anyio
import anyio.lowlevel

from odiqueue import _edits, _wire
from odiqueue._errors import InvalidParameterError, OdiqueueError
from odiqueue._models import BatchItem, Item
from odiqueue._request import ImageRequest

__all__ = ["Feed", "ItemKeys", "bad_item", "request_of"]


class ItemKeys:
    """Assigns keys to a batch's items in order; remembers digests, not the items."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()
        self._occurrences: dict[bytes, int] = {}

    def identify(
        self, item: Item, index: int, identity: Mapping[str, Any] | None = None
    ) -> tuple[str, ImageRequest | None]:
        """The item's key and request (None for a prompt that is not a valid request).

        A key of its own is a digest of the request's ``identity`` (see ``_edits``: what it
        sends, its input files by content, its model), which the caller may have worked
        out already (hashing files is done off the event loop). Raises ``TypeError`` for an
        item of the wrong shape and ``ValueError`` for a key an earlier item already used,
        naming the item's position.
        """
        if isinstance(item, BatchItem):
            if item.key is None:
                return self.identify(item.request, index, identity)
            return self.identify((item.key, item.request), index)
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], ImageRequest):
            key = item[0]
            if not isinstance(key, str) or not key.strip():
                raise TypeError(f"item {index}: the key must be a non-empty string, got {key!r}")
            digest = _digest(key)
            if digest in self._seen:
                raise ValueError(f"item {index}: the key {key!r} was used by an earlier item")
            self._seen.add(digest)
            return key, item[1]
        if isinstance(item, str):
            try:
                request = ImageRequest(item)
            except InvalidParameterError:
                return f"item-{index}", None
        elif isinstance(item, ImageRequest):
            request = item
        else:
            raise TypeError(
                f"item {index}: expected a prompt string, an ImageRequest or a "
                f"(key, ImageRequest) pair, got {type(item).__name__}"
            )
        if identity is None:
            identity = _edits.identity(request)
        digest = _digest(_wire.canonical_json(identity))
        occurrence = self._occurrences.get(digest, 0)
        self._occurrences[digest] = occurrence + 1
        return f"{digest.hex()[:16]}-{occurrence}", request


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).digest()


def request_of(item: object) -> ImageRequest | None:
    """The request an item carries (None for a prompt, or an item of the wrong shape)."""
    if isinstance(item, BatchItem):
        return item.request
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], ImageRequest):
        return item[1]
    return item if isinstance(item, ImageRequest) else None


def bad_item(item: object) -> OdiqueueError:
    """The error that says why a prompt is not a valid request."""
    try:
        ImageRequest(item)  # type: ignore[arg-type]
    except InvalidParameterError as exc:
        return exc
    return OdiqueueError(f"invalid item {item!r}")  # pragma: no cover


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
