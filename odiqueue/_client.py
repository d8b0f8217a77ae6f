"""``AsyncClient``: the four queue calls, polling, waiting and downloading, one job at a time."""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import random
import re
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
)
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import Final
from urllib.parse import quote

import anyio
import attrs
from yarl import URL

from odiqueue import _backoff, _wire
from odiqueue._batch._engine import Batch
from odiqueue._batch._items import Item
from odiqueue._batch._options import (
    DEFAULT_CANCEL_TIMEOUT,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_JOB_RETRIES,
    DEFAULT_POLL_CONCURRENCY,
    BatchOptions,
)
from odiqueue._batch._progress import Progress
from odiqueue._config import (
    DEFAULT_MODEL,
    Limits,
    PollPolicy,
    RetryPolicy,
    Secret,
    Timeouts,
    parse_url,
    resolve_api_key,
    resolve_base_url,
)
from odiqueue._errors import (
    ClientClosedError,
    ConfigurationError,
    DeadlineExceededError,
    DecodeError,
    SubmissionUncertainError,
    TransportError,
)
from odiqueue._http import Transport, retryable
from odiqueue._models import (
    CancelOutcome,
    Image,
    ImageRequest,
    ImageResult,
    JobHandle,
    JobStatus,
    Running,
    failure_of,
)
from odiqueue._naming import DEFAULT_TEMPLATE
from odiqueue._sink import ContentError, SavedFile, write_atomic

__all__ = ["AsyncClient"]

log = logging.getLogger("odiqueue")

try:
    _VERSION = version("odiqueue")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    _VERSION = "0+unknown"

_STILL_IN_PROGRESS: Final = b"still in progress"
#: A request id that is one URL path segment as it stands (no quoting, not "." or "..").
_PLAIN_ID: Final = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*")
_CONTENT_TYPES: Final = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/webp": "webp",
}
_TIMEOUTS: Final = Timeouts()
_LIMITS: Final = Limits()
_RETRY: Final = RetryPolicy()
_POLL: Final = PollPolicy()


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class AsyncClient:
    """An async client for the gpt_image_1 queue API, owning one aiohttp session.

    >>> async with AsyncClient() as client:                      # key from $ODIQUEUE_API_KEY
    ...     result = await client.generate(ImageRequest("A red apple, studio light"))
    ...     await client.download(result.images[0], "apple.png")

    ``provider`` picks a preset base URL (``"odirouter"``, the default, or ``"seaart"``);
    ``base_url`` (or ``$ODIQUEUE_BASE_URL``) overrides it. The API key is sent only to the base
    URL's origin and to ``allowed_hosts``; image downloads from any other host (the CDN) carry
    no key. Plain http is refused for remote hosts unless ``allow_insecure_http`` is set.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        provider: str | None = None,
        base_url: str | None = None,
        model: str = DEFAULT_MODEL,
        timeouts: Timeouts = _TIMEOUTS,
        limits: Limits = _LIMITS,
        retry: RetryPolicy = _RETRY,
        poll: PollPolicy = _POLL,
        allowed_hosts: Collection[str] = (),
        allow_insecure_http: bool = False,
        seed: int | None = None,
    ) -> None:
        if (
            not model
            or not all(c.isalnum() or c in "_-./" for c in model)
            or ".." in model
            or model.startswith("/")
        ):
            raise ConfigurationError(f"model={model!r} must be a model name like 'gpt_image_1'")
        self._key: Secret = resolve_api_key(api_key)
        self._base = resolve_base_url(base_url, provider, allow_insecure_http=allow_insecure_http)
        self._model = model
        self._queue = self._base / "v1" / "queue" / model
        self._requests = f"{self._queue / 'requests'}/"
        self._poll = poll
        self._rng = random.Random(seed)
        self._transport = Transport(
            api_key=self._key,
            api_origin=self._base,
            allowed_hosts=allowed_hosts,
            timeouts=timeouts,
            limits=limits,
            retry=retry,
            user_agent=f"odiqueue/{_VERSION}",
            rng=self._rng,
        )
        self._state = _State.UNOPENED

    def __repr__(self) -> str:
        return (
            f"AsyncClient(base_url={str(self._base)!r}, model={self._model!r}, "
            f"api_key={str(self._key)!r}, state={self._state.value!r})"
        )

    @property
    def base_url(self) -> str:
        """The base URL calls are made against (the submit URL adds ``/v1/queue/{model}``)."""
        return str(self._base)

    @property
    def model(self) -> str:
        """The queue's model name (``gpt_image_1`` by default)."""
        return self._model

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> AsyncClient:
        if self._state is not _State.UNOPENED:
            raise ClientClosedError(
                f"this AsyncClient is {self._state.value}: a client is entered once; "
                "create a new one"
            )
        await self._transport.open()
        self._state = _State.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session. Safe to call more than once."""
        self._state = _State.CLOSED
        with anyio.CancelScope(shield=True):
            await self._transport.aclose()

    def _require_open(self) -> None:
        if self._state is _State.UNOPENED:
            raise ClientClosedError(
                "the client is not open: use `async with AsyncClient(...) as client:`"
            )
        if self._state is _State.CLOSED:
            raise ClientClosedError("the client is closed: create a new AsyncClient")

    # --- the four calls ------------------------------------------------------------------

    async def submit(self, request: ImageRequest | str) -> JobHandle:
        """Create a job; returns its handle once the server has accepted it.

        Retried only when the request provably never reached the server or was refused
        (429, 503). If the reply is lost after sending, raises
        :class:`~odiqueue.SubmissionUncertainError` rather than risk paying twice.
        """
        self._require_open()
        if isinstance(request, str):
            request = ImageRequest(request)
        reply = await self._transport.call("POST", self._queue, body=_wire.request_to_json(request))
        # From here on a paid job exists: whatever is wrong with the reply must not lose it.
        try:
            handle = _wire.guarded(lambda: _wire.structure_handle(reply.data, self._urls_for))
        except DecodeError as exc:
            raise SubmissionUncertainError(
                f"the server accepted the job but its reply is unreadable ({exc.message})",
                provider_request_id=reply.provider_request_id,
            ) from exc
        urls = (handle.status_url, handle.response_url, handle.cancel_url)
        if not all(self._transport.trusts(url) for url in urls):
            # The key is never sent to a foreign origin: the job is followed through the
            # API's own documented endpoints instead.
            log.warning(
                "request %s: the server gave URLs on another origin; using %s instead "
                "(pass allowed_hosts=[...] to trust that host)",
                handle.request_id,
                self._base.host,
            )
            handle = self.attach(handle.request_id)
        log.info("submitted request %s", handle.request_id)
        return handle

    def attach(self, request_id: str) -> JobHandle:
        """A handle for a job known only by its id (from a log, a manifest, another process)."""
        if not isinstance(request_id, str) or not request_id.strip():
            raise ValueError("request_id must be a non-empty string")
        return JobHandle(request_id.strip(), *self._urls_for(request_id.strip()))

    async def status(self, job: JobHandle | str) -> JobStatus:
        """The job's current status: Queued, Running, Succeeded, Failed or Cancelled."""
        handle = self._handle(job)
        url = self._api_url(handle.status_url, "status_url", handle.request_id)
        reply = await self._transport.call("GET", url, request_id=handle.request_id)
        status: JobStatus = _wire.decode(reply.data, JobStatus, request_id=handle.request_id)
        return status if status.request_id else attrs.evolve(status, request_id=handle.request_id)

    async def result(self, job: JobHandle | str) -> ImageResult | None:
        """The finished job's images, or None while it is still queued or running.

        Raises :class:`~odiqueue.JobFailedError` or :class:`~odiqueue.JobCancelledError` when
        the job ended without images.
        """
        found = await self.result_or_status(job)
        if isinstance(found, ImageResult):
            return found
        _raise_if_unsuccessful(found, found.request_id)
        return None

    async def result_or_status(self, job: JobHandle | str) -> ImageResult | JobStatus:
        """One request to the response URL: the images if the job is done, else its status.

        Polling this instead of :meth:`status` saves the separate result request once the
        job completes (the API answers "not ready" with the status). Servers that answer
        "still in progress" without a status give ``Running``.
        """
        handle = self._handle(job)
        url = self._api_url(handle.response_url, "response_url", handle.request_id)
        reply = await self._transport.call(
            "GET", url, request_id=handle.request_id, tolerate=_not_ready
        )
        if reply.status == 400:
            return Running(handle.request_id)
        parsed = _wire.decode(reply.data, ImageResult | JobStatus, request_id=handle.request_id)
        if parsed.request_id:
            return parsed  # type: ignore[no-any-return]
        return attrs.evolve(parsed, request_id=handle.request_id)  # type: ignore[no-any-return]

    async def cancel(self, job: JobHandle | str) -> CancelOutcome:
        """Ask the server to cancel the job.

        Returns ``CancelOutcome.ALREADY_COMPLETED`` (not an error) when the job had already
        finished; raises :class:`~odiqueue.NotFoundError` for an unknown id.
        """
        handle = self._handle(job)
        url = self._api_url(handle.cancel_url, "cancel_url", handle.request_id)
        reply = await self._transport.call(
            "PUT", url, request_id=handle.request_id, tolerate=_already_completed
        )
        outcome: CancelOutcome = _wire.decode(
            reply.data, CancelOutcome, request_id=handle.request_id
        )
        log.info("cancel of request %s: %s", handle.request_id, outcome.value)
        return outcome

    # --- waiting -------------------------------------------------------------------------

    async def poll(
        self, job: JobHandle | str, *, deadline: float | None = None
    ) -> AsyncIterator[JobStatus]:
        """Yield each change of the job's status until it is terminal.

        Waits between requests grow from ``PollPolicy.initial`` to ``PollPolicy.maximum``,
        longer while the job is far back in the queue. ``deadline`` (seconds from now,
        default ``PollPolicy.deadline``) raises :class:`~odiqueue.DeadlineExceededError`.

        >>> async for status in client.poll(handle):
        ...     print(type(status).__name__)
        """
        handle = self._handle(job)
        limit = deadline if deadline is not None else self._poll.deadline
        async with contextlib.aclosing(self._statuses(handle, limit)) as statuses:
            async for status in statuses:
                yield status

    async def _statuses(
        self, handle: JobHandle, limit: float | None
    ) -> AsyncGenerator[JobStatus, None]:
        give_up = None if limit is None else _backoff.now() + limit
        last: JobStatus | None = None
        polls = 0
        while True:
            status = await self.status(handle)
            polls += 1
            if status != last:
                last = status
                yield status
            if status.terminal:
                return
            delay = _backoff.poll_delay(polls, status, self._poll, self._rng)
            if give_up is not None:
                remaining = give_up - _backoff.now()
                if remaining <= 0:
                    raise DeadlineExceededError(
                        f"the job did not finish within {limit:g}s", request_id=handle.request_id
                    )
                delay = min(delay, remaining)
            await _backoff.sleep(delay)

    async def wait(
        self,
        job: JobHandle | str,
        *,
        deadline: float | None = None,
        cancel_on_deadline: bool = True,
    ) -> ImageResult:
        """Wait for the job to finish and return its images.

        Raises :class:`~odiqueue.JobFailedError` or :class:`~odiqueue.JobCancelledError` when
        it ends without images. When ``deadline`` passes, the job is cancelled on the server
        (unless ``cancel_on_deadline`` is false) and :class:`~odiqueue.DeadlineExceededError`
        is raised.
        """
        handle = self._handle(job)
        limit = deadline if deadline is not None else self._poll.deadline
        try:
            with anyio.fail_after(limit):
                async with contextlib.aclosing(self._statuses(handle, None)) as statuses:
                    async for status in statuses:
                        _raise_if_unsuccessful(status, handle.request_id)
                # Status can run ahead of the result endpoint: ask until it answers.
                attempt = 0
                while (found := await self.result(handle)) is None:
                    attempt += 1
                    await _backoff.sleep(_backoff.poll_delay(attempt, None, self._poll, self._rng))
                return found
        except TimeoutError:
            if cancel_on_deadline:
                await self._cancel_quietly(handle)
            raise DeadlineExceededError(
                f"the job did not finish within {limit}s", request_id=handle.request_id
            ) from None

    async def generate(
        self, request: ImageRequest | str, *, deadline: float | None = None
    ) -> ImageResult:
        """Submit one request and wait for its images (``result.images``, in order).

        >>> result = await client.generate("A blue ceramic mug on oak, soft light")
        """
        handle = await self.submit(request)
        return await self.wait(handle, deadline=deadline)

    async def download(
        self,
        image: Image,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        expected_format: str | None = None,
        request_id: str | None = None,
    ) -> SavedFile:
        """Save one image to ``path``: streamed in chunks to a part file, verified, renamed.

        The file is checked to be non-empty, as long as the server announced, and an image of
        the expected format (from ``expected_format`` or the image's content type). Downloads
        are retried like any idempotent GET. An existing file is kept unless ``overwrite``:
        :class:`FileExistsError` is raised, except when it holds the very same bytes (it is
        this image already). Image hosts other than the API's origin never receive the API
        key; an error status from an image host raises :class:`ImageDownloadError`.
        """
        self._require_open()
        target = Path(path)
        fmt = expected_format or _CONTENT_TYPES.get((image.content_type or "").lower())
        if image.b64 is not None:
            try:
                data = image.decode()
            except ValueError as exc:
                raise DecodeError(str(exc), path="image", request_id=request_id) from None

            async def once() -> AsyncIterator[bytes]:
                yield data

            try:
                return await write_atomic(target, once(), expected_format=fmt, overwrite=overwrite)
            except ContentError as exc:
                raise DecodeError(
                    f"inline image: {exc}", path="image", request_id=request_id
                ) from None
        if image.url is None:
            raise ValueError("the image has neither a url nor inline data")
        try:
            url = parse_url(image.url)
        except ValueError:
            raise DecodeError(
                f"the image URL is not a URL: {image.url[:80]!r}",
                path="image.url",
                request_id=request_id,
            ) from None

        async def attempt() -> SavedFile:
            async with self._transport.download(url, request_id=request_id) as (length, chunks):
                try:
                    return await write_atomic(
                        target,
                        chunks,
                        expected_length=length,
                        expected_format=fmt,
                        overwrite=overwrite,
                    )
                except ContentError as exc:
                    raise retryable(
                        TransportError(f"bad image from {url.host}: {exc}", request_id=request_id)
                    ) from exc

        return await self._transport.retrying(attempt, request_id=request_id)

    # --- many jobs -------------------------------------------------------------------------

    def generate_many(
        self,
        items: Iterable[Item] | AsyncIterable[Item],
        out_dir: str | os.PathLike[str],
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        submit_rate: float | None = None,
        submit_burst: int = 8,
        poll_concurrency: int = DEFAULT_POLL_CONCURRENCY,
        max_job_retries: int = DEFAULT_MAX_JOB_RETRIES,
        deadline: float | None = None,
        name_template: str = DEFAULT_TEMPLATE,
        overwrite: bool = False,
        resume: bool = True,
        keep_remote: bool = False,
        cancel_timeout: float = DEFAULT_CANCEL_TIMEOUT,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> Batch:
        """Generate many images into ``out_dir``, yielding each item's :class:`Outcome`.

        >>> async with client.generate_many(["a red mug", "a blue mug"], "out") as outcomes:
        ...     async for outcome in outcomes:
        ...         print(outcome.key, outcome.paths if outcome.ok else outcome.error)

        An item is a prompt, an :class:`ImageRequest`, or a ``(key, ImageRequest)`` pair; the
        key names the item across runs (default: a hash of the request and its occurrence).
        Items are read lazily from any iterable or async iterable. Outcomes come in
        completion order.

        - ``max_in_flight`` jobs at most are submitted and unfinished at once;
          ``submit_rate`` (per second, bursts of ``submit_burst``) spaces submits out, and is
          halved for a while after a 429 (None: no limit until the server asks).
        - ``poll_concurrency`` bounds concurrent status requests of the whole batch.
        - A job failing with INFERENCE_FAILURE, INFERENCE_TIMEOUT or INTERNAL_SERVER_ERROR is
          submitted again up to ``max_job_retries`` times. Other failures are outcomes;
          authentication, credit and permission errors stop new submissions and are raised
          after the jobs already paid for are saved.
        - ``deadline`` (seconds per job, from its submission) cancels a job that takes longer.
        - Files are named by ``name_template`` with ``{key}``, ``{index}`` (image number within
          the job), ``{request_id}`` and ``{ext}``; existing files are never overwritten unless
          ``overwrite``.
        - ``out_dir/manifest.jsonl`` records every step: with ``resume`` (the default) running
          the same batch again skips saved items, picks up submitted jobs by id (no new
          payment) and submits only the rest. ``resume=False`` sets the old manifest aside.
        - Leaving early cancels unfinished jobs on the server unless ``keep_remote``.
        - ``on_progress`` is called with a :class:`Progress` snapshot at every change.
        """
        self._require_open()
        options = BatchOptions(
            max_in_flight=max_in_flight,
            submit_rate=submit_rate,
            submit_burst=submit_burst,
            poll_concurrency=poll_concurrency,
            max_job_retries=max_job_retries,
            deadline=deadline,
            name_template=name_template,
            overwrite=overwrite,
            resume=resume,
            keep_remote=keep_remote,
            cancel_timeout=cancel_timeout,
        )
        return Batch(self, items, Path(out_dir), options, on_progress)

    # --- helpers -------------------------------------------------------------------------

    def _urls_for(self, request_id: str) -> tuple[str, str, str]:
        if _PLAIN_ID.fullmatch(request_id):
            # The usual id needs no quoting: plain text, no URL objects (once per job).
            job = self._requests + request_id
        else:
            job = str(self._queue / "requests" / quote(request_id, safe=""))
        return f"{job}/status", f"{job}/response", f"{job}/cancel"

    def _handle(self, job: JobHandle | str) -> JobHandle:
        self._require_open()
        return self.attach(job) if isinstance(job, str) else job

    def _api_url(self, raw: str, what: str, request_id: str) -> URL:
        return self._transport.check_api_url(raw, what=what, request_id=request_id)

    async def _cancel_quietly(self, handle: JobHandle) -> None:
        with anyio.move_on_after(10, shield=True):
            try:
                await self.cancel(handle)
            except Exception as exc:  # best effort: the deadline error is what matters
                log.warning("could not cancel request %s: %s", handle.request_id, exc)


def _not_ready(status: int, body: bytes) -> bool:
    return status == 400 and _STILL_IN_PROGRESS in body.lower()


def _already_completed(status: int, body: bytes) -> bool:
    return status == 400 and b"already_completed" in body.lower()


def _raise_if_unsuccessful(status: JobStatus, request_id: str) -> None:
    error = failure_of(status, request_id)
    if error is not None:
        raise error
