"""Small JPEG thumbnails for the review page, made with Pillow when it is installed.

A thumbnail is named by the image's path, size and modification time, so it is made once
and remade when the image changes; the page refers to it by a relative link. Without Pillow
(or for a file Pillow cannot read) there is no thumbnail and the page shows the image itself.
Thumbnails of images that are gone are left in place (a few kilobytes each).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import urllib.parse
from pathlib import Path
from typing import Final

__all__ = ["THUMBS_DIR", "THUMB_PX", "Thumbnails"]

log = logging.getLogger("odiqueue")

THUMBS_DIR: Final = ".thumbs"
#: The longest side of a thumbnail, in pixels: sharp in a card on a high-density screen.
THUMB_PX: Final = 320
_QUALITY: Final = 80


class Thumbnails:
    """The thumbnails of one page: those already made are reused at no cost; new ones are
    made until ``budget`` seconds have gone, so that a page of thousands of new images is
    still written in bounded time (the rest show the image itself, and are made by the
    next rewrite)."""

    def __init__(self, out_dir: Path, budget: float) -> None:
        self.out_dir = out_dir
        self._deadline = time.monotonic() + budget
        #: Images shown at full size because the budget ran out.
        self.pending = 0

    def __call__(self, image: Path) -> str | None:
        """A link (relative to the output folder) to a thumbnail of ``image``; None without
        Pillow, for an image it cannot read, or once the budget is spent."""
        try:
            stat = image.stat()
        except OSError:
            return None
        stamp = f"{image.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
        name = hashlib.blake2b(stamp.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
        target = self.out_dir / THUMBS_DIR / f"{name}.jpg"
        if not target.exists():
            if time.monotonic() > self._deadline:
                self.pending += 1
                return None
            if not _make(image, target):
                return None
        return urllib.parse.quote(f"{THUMBS_DIR}/{target.name}")


def _make(image: Path, target: Path) -> bool:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        return False
    try:
        with Image.open(image) as opened:
            opened.thumbnail((THUMB_PX, THUMB_PX))
            small = opened.convert("RGBA")
        # JPEG has no alpha: a transparent product goes on white, as a shop page shows it.
        flat = Image.new("RGB", small.size, (255, 255, 255))
        flat.paste(small, mask=small.getchannel("A"))
        target.parent.mkdir(exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            flat.save(temporary, "JPEG", quality=_QUALITY)
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        log.info("no thumbnail for %s: %s", image, exc)
        return False
    return True
