"""The last step of a batch's job: fetch the finished job's result, then save each image.

Images are saved one at a time per job, and at most ``DOWNLOAD_CONCURRENCY`` at once per
batch: downloads are bound by bandwidth, not by how many run at once, and each holds a
buffer (up to ``_sink.FLUSH_BYTES``), so a few at a time keep memory flat however large
the images (scenario 3 of ``python -m benchmarks`` measures it). Every file goes through
:meth:`AsyncClient.download` (streamed to a part file, verified, renamed).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio

from odiqueue._batch._throttle import take
from odiqueue._errors import JobFailedError, OutputFileError
from odiqueue._models import ImageResult, JobHandle
from odiqueue._naming import image_path, second_name
from odiqueue._request import ImageRequest
from odiqueue._sink import SavedFile

if TYPE_CHECKING:
    from odiqueue._client import AsyncClient

__all__ = ["DOWNLOAD_CONCURRENCY", "Collector"]

log = logging.getLogger("odiqueue")

#: Image downloads of one batch that run at once.
DOWNLOAD_CONCURRENCY: Final = 8
#: Asks for a result the server said was ready but does not serve yet.


class Collector:
    """Saves finished jobs' images into one folder, under the batch's download limit."""

    def __init__(self, client: AsyncClient, out_dir: Path) -> None:
        self._client = client
        self._out_dir = out_dir
        self._downloads = anyio.CapacityLimiter(DOWNLOAD_CONCURRENCY)

    def path(
        self,
        template: str,
        key: str,
        request: ImageRequest,
        index: int,
        request_id: str,
        count: int | None = None,
    ) -> Path:
        """Where image ``index`` of the item goes (``count``: images the job returned)."""
        return image_path(
            self._out_dir,
            template,
            key=key,
            index=index,
            request_id=request_id,
            ext=request.format.extension,
            count=request.count if count is None else count,
        )

    async def collect(
        self,
        handle: JobHandle,
        result: ImageResult | None,
        *,
        template: str,
        key: str,
        request: ImageRequest,
        overwrite: bool,
        apart: bool = False,
    ) -> list[SavedFile]:
        """Save every image of a finished job, fetching its result first if not given.

        A name taken since the batch checked it is kept: the image is saved under a name
        with the request id instead, rather than losing an image that is paid for. With
        ``apart`` (another item of the batch holds the name) it goes there at once.
        """
        if result is None:
            result = await self._client.completed_result(handle)
        if not result.images:
            raise JobFailedError(
                "the job completed without any image", request_id=handle.request_id
            )
        images = result.images
        if len(images) > request.count:
            # Never more files than were asked for (and paid for): a result listing 300
            # images for n=1 would otherwise fill the folder.
            log.warning(
                "item %s: request %s returned %d images for n=%d: saving only the first %d",
                key,
                handle.request_id,
                len(images),
                request.count,
                request.count,
            )
            images = images[: request.count]
        saved: list[SavedFile] = []
        count = len(images)
        for index, image in enumerate(images):
            path = self.path(template, key, request, index, handle.request_id, count)
            if apart:
                path = second_name(path, handle.request_id)
            await take(self._downloads)
            try:
                try:
                    file = await self._client.download(
                        image, path, overwrite=overwrite, request_id=handle.request_id
                    )
                except FileExistsError:
                    path = second_name(path, handle.request_id)
                    file = await self._client.download(image, path, request_id=handle.request_id)
            except OutputFileError:
                raise
            except OSError as exc:
                raise OutputFileError(
                    f"could not write {path}: {exc}", request_id=handle.request_id
                ) from exc
            finally:
                self._downloads.release()
            saved.append(file)
        return saved
