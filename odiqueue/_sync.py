"""``Client``: :class:`AsyncClient` for code that does not await, on a loop of its own.

Each client runs one event loop on a background thread (anyio's blocking portal) and sends
every call there, so it works the same from a script, from several threads at once, and
from a Jupyter cell or a Django view whose own thread may already run a loop.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import ssl
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Iterable, Iterator
from concurrent.futures import CancelledError, Future
from types import TracebackType
from typing import TYPE_CHECKING, Final, TypeVar, cast

import anyio.from_thread

from odiqueue._client import AsyncClient
from odiqueue._config import (
    DEFAULT_CANCEL_TIMEOUT,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_JOB_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_POLL_CONCURRENCY,
    DEFAULT_SUBMIT_BURST,
    DownloadPolicy,
    Limits,
    PollPolicy,
    RetryPolicy,
    Timeouts,
)
from odiqueue._errors import ClientClosedError
from odiqueue._loop_thread import start_loop, stop_loop
from odiqueue._models import CancelOutcome, Image, ImageResult, Item, JobHandle, JobStatus, Outcome
from odiqueue._naming import DEFAULT_TEMPLATE
from odiqueue._prices import PriceTable
from odiqueue._request import ImageRequest
from odiqueue._sink import SavedFile

if TYPE_CHECKING:
    from odiqueue._batch import Batch, Progress

__all__ = ["Client", "SyncBatch"]

T = TypeVar("T")

_TIMEOUTS: Final = Timeouts()
_LIMITS: Final = Limits()
_RETRY: Final = RetryPolicy()
_POLL: Final = PollPolicy()
_DOWNLOADS: Final = DownloadPolicy()
#: How long Ctrl-C waits for an interrupted call to clean up (its job's remote cancel is
#: bounded by the cancel timeout; the margin covers the hop to the loop and back).
_CLEANUP_WAIT: Final = DEFAULT_CANCEL_TIMEOUT + 5.0
#: Clients opened and not closed yet: closed at exit, while their loops still run.
_OPEN: weakref.WeakSet[Client] = weakref.WeakSet()


@atexit.register
def _close_forgotten() -> None:
    for client in list(_OPEN):
        with contextlib.suppress(Exception):
            client.close()


class Client:
    """A blocking client: the same constructor and calls as :class:`AsyncClient`.

    >>> with Client() as client:                                  # key from $ODIQUEUE_API_KEY
    ...     result = client.generate(ImageRequest("A red apple, studio light"))
    ...     client.download(result.images[0], "apple.png")

    Or ``client = Client(...)`` and ``client.close()`` when done (a web app's startup and
    shutdown). One client serves many threads at once; its calls run on one event loop in
    a background thread, so a loop already running in the caller's thread (Jupyter) does
    not matter. Ctrl-C during a call raises :class:`KeyboardInterrupt` as usual, after the
    call has cleaned up: an interrupted :meth:`wait` or :meth:`generate` cancels its job on
    the server unless ``keep_remote=True``.
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
        downloads: DownloadPolicy = _DOWNLOADS,
        allowed_hosts: Collection[str] = (),
        allow_insecure_http: bool = False,
        proxy: str | None = None,
        trust_env: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        seed: int | None = None,
    ) -> None:
        # Made here, in the caller's thread, so a bad setting fails at once.
        self._client = AsyncClient(
            api_key,
            provider=provider,
            base_url=base_url,
            model=model,
            timeouts=timeouts,
            limits=limits,
            retry=retry,
            poll=poll,
            downloads=downloads,
            allowed_hosts=allowed_hosts,
            allow_insecure_http=allow_insecure_http,
            proxy=proxy,
            trust_env=trust_env,
            ssl_context=ssl_context,
            seed=seed,
        )
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return repr(self._client).replace("AsyncClient(", "Client(", 1)

    @property
    def base_url(self) -> str:
        """The base URL calls are made against (the submit URL adds ``/v1/queue/{model}``)."""
        return self._client.base_url

    @property
    def model(self) -> str:
        """The queue's model name (``gpt_image_1`` by default)."""
        return self._client.model

    @property
    def retry_policy(self) -> RetryPolicy:
        """How each call is retried."""
        return self._client.retry_policy

    @property
    def poll_policy(self) -> PollPolicy:
        """How often a job's status is asked for."""
        return self._client.poll_policy

    @property
    def refused_submits(self) -> int:
        """How many submits the API has refused with 429 so far (never billed)."""
        return self._client.refused_submits

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Client:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Start the background loop and open the HTTP session (``with`` does this)."""
        with self._lock:
            if self._portal is not None:
                raise ClientClosedError("this Client is already open")
            portal, thread = start_loop()
            try:
                portal.call(self._client.__aenter__)
            except BaseException:
                stop_loop(portal, thread)
                raise
            self._portal, self._thread = portal, thread
            _OPEN.add(self)

    def close(self) -> None:
        """Close the HTTP session and stop the background loop. Safe to call more than once."""
        with self._lock:
            portal, self._portal = self._portal, None
            if portal is None:
                return
            _OPEN.discard(self)
            try:
                portal.call(self._client.aclose)
            finally:
                assert self._thread is not None
                stop_loop(portal, self._thread)

    def _run(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call()`` on the client's loop and wait for it.

        On Ctrl-C the call is cancelled and given time to clean up (cancel its job on the
        server) before :class:`KeyboardInterrupt` goes on.
        """
        portal = self._portal
        if portal is None:
            raise ClientClosedError(
                "the client is not open: use `with Client(...) as client:` (or client.open())"
            )
        finished = threading.Event()

        async def task() -> T:
            try:
                return await call()
            finally:
                finished.set()

        future: Future[T] = portal.start_task_soon(task)
        try:
            return future.result()
        except CancelledError:
            raise ClientClosedError("the client was closed during the call") from None
        except KeyboardInterrupt:
            future.cancel()
            finished.wait(_CLEANUP_WAIT)
            raise

    # --- the four calls ------------------------------------------------------------------

    def submit(self, request: ImageRequest | str) -> JobHandle:
        """Create a job; returns its handle (see :meth:`AsyncClient.submit`)."""
        return self._run(lambda: self._client.submit(request))

    def attach(self, request_id: str) -> JobHandle:
        """A handle for a job known only by its id."""
        return self._client.attach(request_id)

    def status(self, job: JobHandle | str) -> JobStatus:
        """The job's current status (see :meth:`AsyncClient.status`)."""
        return self._run(lambda: self._client.status(job))

    def result(self, job: JobHandle | str) -> ImageResult | None:
        """The finished job's images, or None while it runs (see :meth:`AsyncClient.result`)."""
        return self._run(lambda: self._client.result(job))

    def result_or_status(self, job: JobHandle | str) -> ImageResult | JobStatus:
        """The images if the job is done, else its status, in one request."""
        return self._run(lambda: self._client.result_or_status(job))

    def cancel(self, job: JobHandle | str) -> CancelOutcome:
        """Ask the server to cancel the job (see :meth:`AsyncClient.cancel`)."""
        return self._run(lambda: self._client.cancel(job))

    # --- waiting -------------------------------------------------------------------------

    def poll(self, job: JobHandle | str, *, deadline: float | None = None) -> Iterator[JobStatus]:
        """Yield each change of the job's status until it is terminal.

        >>> for status in client.poll(handle):
        ...     print(type(status).__name__)
        """
        # An async generator at run time: closed on the loop when the caller stops early.
        statuses = cast(
            "AsyncGenerator[JobStatus, None]", self._client.poll(job, deadline=deadline)
        )
        try:
            while True:
                try:
                    yield self._run(statuses.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            if self._portal is not None:
                self._run(statuses.aclose)

    def wait(
        self,
        job: JobHandle | str,
        *,
        deadline: float | None = None,
        cancel_on_deadline: bool = True,
        keep_remote: bool = False,
    ) -> ImageResult:
        """Wait for the job to finish and return its images (see :meth:`AsyncClient.wait`).

        Ctrl-C cancels the job on the server unless ``keep_remote``.
        """
        return self._run(
            lambda: self._client.wait(
                job,
                deadline=deadline,
                cancel_on_deadline=cancel_on_deadline,
                keep_remote=keep_remote,
            )
        )

    def completed_result(self, job: JobHandle | str) -> ImageResult:
        """The images of a job whose status said it succeeded."""
        return self._run(lambda: self._client.completed_result(job))

    def generate(
        self,
        request: ImageRequest | str,
        *,
        deadline: float | None = None,
        keep_remote: bool = False,
    ) -> ImageResult:
        """Submit one request and wait for its images.

        >>> result = client.generate("A blue ceramic mug on oak, soft light")

        Ctrl-C cancels the job on the server unless ``keep_remote``.
        """
        return self._run(
            lambda: self._client.generate(request, deadline=deadline, keep_remote=keep_remote)
        )

    def download(
        self,
        image: Image,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        expected_format: str | None = None,
        request_id: str | None = None,
    ) -> SavedFile:
        """Save one image to ``path``, verified (see :meth:`AsyncClient.download`)."""
        return self._run(
            lambda: self._client.download(
                image,
                path,
                overwrite=overwrite,
                expected_format=expected_format,
                request_id=request_id,
            )
        )

    # --- many jobs -------------------------------------------------------------------------

    def generate_many(
        self,
        items: Iterable[Item],
        out_dir: str | os.PathLike[str],
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        submit_rate: float | None = None,
        submit_burst: int = DEFAULT_SUBMIT_BURST,
        poll_concurrency: int = DEFAULT_POLL_CONCURRENCY,
        max_job_retries: int = DEFAULT_MAX_JOB_RETRIES,
        deadline: float | None = None,
        name_template: str = DEFAULT_TEMPLATE,
        overwrite: bool = False,
        resume: bool = True,
        keep_remote: bool = False,
        cancel_timeout: float = DEFAULT_CANCEL_TIMEOUT,
        max_images: int | None = None,
        max_cost: float | None = None,
        prices: PriceTable | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> SyncBatch:
        """Generate many images into ``out_dir``, yielding each item's :class:`Outcome`.

        >>> with client.generate_many(["a red mug", "a blue mug"], "out") as outcomes:
        ...     for outcome in outcomes:
        ...         print(outcome.key, outcome.paths if outcome.ok else outcome.error)

        The keywords are :meth:`AsyncClient.generate_many`'s. Items are read, and
        ``on_progress`` is called, on the client's background thread. Leaving the ``with``
        early (``break``, an error, Ctrl-C) cancels unfinished jobs unless ``keep_remote``.
        """
        batch = self._client.generate_many(
            items,
            out_dir,
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
            max_images=max_images,
            max_cost=max_cost,
            prices=prices,
            on_progress=on_progress,
        )
        return SyncBatch(self, batch)


class SyncBatch:
    """A running batch of a :class:`Client`: ``with`` it, then ``for`` its outcomes."""

    def __init__(self, client: Client, batch: Batch) -> None:
        self._client = client
        self._batch = batch
        self._context: contextlib.AbstractContextManager[Batch] | None = None

    def __enter__(self) -> SyncBatch:
        portal = self._client._portal
        if portal is None:
            raise ClientClosedError("the client is closed: use `with Client(...) as client:`")
        context = portal.wrap_async_context_manager(self._batch)
        context.__enter__()
        self._context = context
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        context, self._context = self._context, None
        if context is None:
            return None
        return context.__exit__(exc_type, exc, tb)

    def __iter__(self) -> Iterator[Outcome]:
        if self._context is None:
            raise RuntimeError(
                "use `with client.generate_many(...) as outcomes:` and then "
                "`for outcome in outcomes:`"
            )
        return self

    def __next__(self) -> Outcome:
        try:
            return self._client._run(self._batch.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None

    @property
    def progress(self) -> Progress:
        """The batch's counts right now."""
        portal = self._client._portal
        if portal is None:
            raise ClientClosedError("the client is closed: read progress inside its `with`")
        # Read on the loop: the batch's clock is the loop's.
        return portal.call(lambda: self._batch.progress)
