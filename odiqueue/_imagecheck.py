"""Whether bytes make a whole image, checked as they are written: :class:`ImageCheck`.

Each piece a download or an inline image writes is fed to the walk of its format (see
``_imageformats``), so the check costs one more pass over bytes already in memory and a
cut-off or damaged file is refused before it gets its name. :func:`decode` (with Pillow)
is the stronger, slower check a :class:`~odiqueue.DownloadPolicy` may ask for.
"""

from __future__ import annotations

from odiqueue._imageformats import HEAD_BYTES, WALKERS, ContentError, Walker, sniff_format

__all__ = ["ContentError", "ImageCheck", "decode", "pillow_missing", "sniff_format"]


class ImageCheck:
    """The structural check of one image, fed its bytes in order.

    >>> check = ImageCheck()
    >>> check.feed(b"\\x89PNG\\r\\n\\x1a\\n")
    >>> check.finish()
    Traceback (most recent call last):
    ...
    odiqueue._imagecheck.ContentError: the png is cut off before its IEND chunk

    :meth:`feed` raises :class:`ContentError` as soon as the bytes cannot be an image (a
    bad CRC, a bad marker), :meth:`finish` when they stop short of the end.
    """

    __slots__ = ("_head", "_walker")

    def __init__(self) -> None:
        self._head = b""
        self._walker: Walker | None = None

    def feed(self, data: bytes) -> None:
        """Check the next bytes of the image."""
        walker = self._walker
        if walker is None:
            self._head += data
            if len(self._head) < HEAD_BYTES:
                return
            data, self._head = self._head, b""
            self._walker = walker = self._start(data)
        walker.feed(data)

    def finish(self) -> str:
        """The image's format, once every byte has been fed; raises :class:`ContentError`
        when the bytes are no whole image."""
        walker = self._walker
        if walker is None:
            if not self._head:
                raise ContentError("the image is empty")
            self._walker = walker = self._start(self._head)
            walker.feed(self._head)
        if not walker.done:
            raise ContentError(walker.incomplete())
        problem = walker.trailing_problem()
        if problem is not None:
            raise ContentError(problem)
        return walker.name

    @staticmethod
    def _start(head: bytes) -> Walker:
        found = sniff_format(head)
        if found is None:
            raise ContentError(f"not an image (starts with {head[:8]!r})")
        return WALKERS[found]()


def pillow_missing() -> bool:
    """Whether Pillow, needed for a full decode, cannot be imported."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return True
    return False


def decode(path: str) -> None:
    """Decode the image file at ``path`` with Pillow, every pixel; raises
    :class:`ContentError` when it does not decode. Runs in a worker thread."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except Exception as exc:  # Pillow raises many kinds (OSError, SyntaxError, ValueError...)
        raise ContentError(f"the image does not decode: {exc}") from None
