"""An edit's input image reference: an http(s) URL, a ``data:`` URI, or a local file.

Making one does no I/O: a file is checked and read when its job is submitted (see
``_edits``), so a batch of thousands of photos never holds them all at once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

import attrs

__all__ = ["ImageRef"]

_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


@attrs.frozen
class ImageRef:
    """One input image of an edit (``images`` or ``mask``).

    An ``http(s)`` URL is sent as it is: the client never fetches it, and never sends the
    API key anywhere because of it. A ``data:`` URI is sent as it is too. Anything else is
    a local file, read when the job is submitted and sent inline (or uploaded, see
    ``AsyncClient(upload_url=...)``).

    >>> ImageRef.of("https://shop.example/mug.jpg").is_file
    False
    >>> ImageRef.of("photos/mug.jpg", base="/data/catalog").path
    PosixPath('/data/catalog/photos/mug.jpg')
    """

    #: The URL or data URI, as given (None for a file).
    url: str | None = None
    #: The local file (None for a URL).
    path: Path | None = None

    @classmethod
    def of(cls, value: str | os.PathLike[str] | ImageRef, *, base: Path | None = None) -> ImageRef:
        """A reference from a URL, a path, or a reference (returned as it is).

        A relative path is taken relative to ``base`` when given. Raises ``ValueError`` for
        an empty text or a URL scheme other than http, https or data.
        """
        if isinstance(value, ImageRef):
            return value
        if isinstance(value, os.PathLike):
            return cls(path=_under(Path(value), base))
        if not isinstance(value, str):
            raise TypeError(f"expected a URL or a file path, got {type(value).__name__}")
        text = value.strip()
        if not text:
            raise ValueError("an empty image reference")
        lowered = text[:8].lower()
        if lowered.startswith(("http://", "https://")):
            return cls(url=text)
        if lowered.startswith("data:"):
            if ";base64," not in text[:100]:
                raise ValueError("a data: URI must be base64 (data:image/png;base64,...)")
            return cls(url=text)
        scheme = _SCHEME.match(text)
        # "C:\photo.jpg" is a Windows path, not a URL with scheme "c".
        if scheme is not None and len(scheme.group()) > 2 and "://" in text:
            raise ValueError(
                f"{text[:60]!r} is neither an http(s) URL nor a local file "
                f"({scheme.group()[:-1]} URLs are not fetched)"
            )
        return cls(path=_under(Path(text).expanduser(), base))

    @property
    def is_file(self) -> bool:
        """Whether it is a local file (read and sent inline, or uploaded)."""
        return self.path is not None

    @property
    def is_inline_data(self) -> bool:
        """Whether it is a ``data:`` URI given by the caller."""
        return self.url is not None and self.url[:5].lower() == "data:"

    def __str__(self) -> str:
        return self.url if self.url is not None else str(self.path)

    def shown(self) -> str:
        """The reference for a message: a data: URI shortened."""
        text = str(self)
        return text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)"


def _under(path: Path, base: Path | None) -> Path:
    return path if base is None or path.is_absolute() else base / path
