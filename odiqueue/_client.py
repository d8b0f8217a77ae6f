"""``AsyncClient``: the four queue calls, polling, waiting and downloading, one job at a time."""

from __future__ import annotations

import enum
import logging
import os
import random
import ssl
from collections.abc import (
    AsyncIterable,
    Callable,
    Collection,
    Iterable,
)
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import anyio
import attrs
from yarl import URL

from odiqueue import _wire
from odiqueue._config import (
    DEFAULT_CANCEL_TIMEOUT,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_JOB_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_POLL_CONCURRENCY,
    DEFAULT_SUBMIT_BURST,
    VERSION,
    BatchOptions,
    DownloadPolicy,
    Limits,
    PollPolicy,
    RetryPolicy,
    Secret,
    Timeouts,
    resolve_api_key,
    resolve_base_url,
)
from odiqueue._download import save_image
from odiqueue._endpoints import Endpoints, check_model_name
from odiqueue._errors import (
    ClientClosedError,
    ConfigurationError,
    InvalidParameterError,
    OutputFileError,
    OutputFileExistsError,
)
from odiqueue._http import Transport
from odiqueue._models import CancelOutcome, Image, ImageResult, Item, JobHandle, JobStatus, Running
from odiqueue._naming import DEFAULT_TEMPLATE
from odiqueue._prices import PriceTable
from odiqueue._proxy import ProxySettings
from odiqueue._request import ImageRequest
from odiqueue._sink import SavedFile
from odiqueue._waiting import WaitingCalls, raise_if_failed

if TYPE_CHECKING:
    from odiqueue._batch import Batch, Progress

__all__ = ["AsyncClient"]

log = logging.getLogger("odiqueue")

_TIMEOUTS: Final = Timeouts()
_LIMITS: Final = Limits()
_RETRY: Final = RetryPolicy()
_POLL: Final = PollPolicy()
_DOWNLOADS: Final = DownloadPolicy()


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class AsyncClient(WaitingCalls):
    """An async client for the gpt_image_1 queue API, owning one aiohttp session.

    >>> async with AsyncClient() as client:                      # key from $ODIQUEUE_API_KEY
    ...     result = await client.generate(ImageRequest("A red apple, studio light"))
    ...     await client.download(result.images[0], "apple.png")

    ``provider`` picks a preset base URL (``"odirouter"``, the default, or ``"seaart"``);
    ``base_url`` (or ``$ODIQUEUE_BASE_URL``) overrides it. The API key is sent only to the base
    URL's origin and to ``allowed_hosts``; image downloads from any other host (the CDN) carry
    no key. Plain http is refused for remote hosts unless ``allow_insecure_http`` is set.

    Requests go through the proxy named by ``HTTPS_PROXY``, ``HTTP_PROXY`` or ``ALL_PROXY``
    (hosts in ``NO_PROXY`` excepted), as with requests and httpx, or through ``proxy`` (an
    ``http://[user:password@]host:port`` URL) when given; ``trust_env=False`` ignores those
    variables. The API key reaches an https API only inside the proxy's CONNECT tunnel; a
    plain-http API is never reached through a proxy with the key (a ConfigurationError).
    ``ssl_context`` replaces the system's certificate checks, e.g.
    ``ssl.create_default_context(cafile="corp-ca.pem")`` behind a TLS-inspecting proxy.
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
        check_model_name(model)
        self._key: Secret = resolve_api_key(api_key)
        self._base = resolve_base_url(base_url, provider, allow_insecure_http=allow_insecure_http)
        self._model = model
        self._endpoints = Endpoints(self._base, model)
        self._poll = poll
        self._downloads = downloads
        self._rng = random.Random(seed)
        proxies = ProxySettings.from_env(os.environ, proxy=proxy, trust_env=trust_env)
        via = proxies.for_url(self._base)
        if via is not None:
            if self._base.scheme != "https":
                raise ConfigurationError(
                    f"base_url={str(self._base)!r} is plain http and would be reached through "
                    f"the proxy {via}, which would read the API key: use https, list the host "
                    "in NO_PROXY, or pass trust_env=False"
                )
            log.debug("requests to %s go through the proxy %s", self._base.host, via)
        self._proxy_shown = None if via is None else via.shown
        self._transport = Transport(
            api_key=self._key,
            api_origin=self._base,
            allowed_hosts=allowed_hosts,
            timeouts=timeouts,
            limits=limits,
            retry=retry,
            user_agent=f"odiqueue/{VERSION}",
            rng=self._rng,
            proxies=proxies,
            ssl_context=ssl_context,
        )
        self._state = _State.UNOPENED

    def __repr__(self) -> str:
        return (
            f"AsyncClient(base_url={str(self._base)!r}, model={self._model!r}, "
            f"api_key={str(self._key)!r}, state={self._state.value!r}"
            + ("" if self._proxy_shown is None else f", proxy={self._proxy_shown!r}")
            + ")"
        )

    @property
    def base_url(self) -> str:
        """The base URL calls are made against (the submit URL adds ``/v1/queue/{model}``)."""
        return str(self._base)

    @property
    def model(self) -> str:
        """The queue's model name (``gpt_image_1`` by default)."""
        return self._model

    @property
    def retry_policy(self) -> RetryPolicy:
        """How each call is retried (also paces a batch's re-asks for a late result)."""
        return self._transport.retrier.policy

    @property
    def poll_policy(self) -> PollPolicy:
        """How often a job's status is asked for (a batch plans its polls within it)."""
        return self._poll

    @property
    def refused_submits(self) -> int:
        """How many submits the API has refused with 429 so far (never billed).

        A batch reads it around each submit to slow its own rate down.
        """
        return self._transport.retrier.submits_refused

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> AsyncClient:
        await self.open()
        return self

    async def open(self) -> None:
        """Open the HTTP session, for code that cannot use ``async with`` (an application's
        startup hook); pair it with :meth:`aclose` (its shutdown hook).

        >>> client = AsyncClient()
        >>> await client.open()      # at startup
        >>> await client.aclose()    # at shutdown

        A client is opened once: opening it again, or after closing, raises
        :class:`~odiqueue.ClientClosedError`.
        """
        if self._state is not _State.UNOPENED:
            raise ClientClosedError(
                f"this AsyncClient is {self._state.value}: a client is opened once; "
                "create a new one"
            )
        await self._transport.open()
        self._state = _State.OPEN

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session. Safe to call more than once."""
        self._state = _State.CLOSED
        with anyio.CancelScope(shield=True):
            await self._transport.aclose()

    def _require_open(self) -> None:
        if self._state is _State.UNOPENED:
            raise ClientClosedError(
                "the client is not open: use `async with AsyncClient(...) as client:` "
                "or `await client.open()`"
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
        reply = await self._transport.call(
            "submit", self._endpoints.queue, body=_wire.request_to_json(request)
        )
        handle = _wire.decode_submit(
            reply.data, self._endpoints.job_urls, reply.provider_request_id
        )
        urls = (handle.status_url, handle.response_url, handle.cancel_url)
        if not all(self._transport.routes.trusts(url) for url in urls):
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
            raise InvalidParameterError("request_id", request_id, "a non-empty string")
        return JobHandle(request_id.strip(), *self._endpoints.job_urls(request_id.strip()))

    async def status(self, job: JobHandle | str) -> JobStatus:
        """The job's current status: Queued, Running, Succeeded, Failed or Cancelled."""
        handle, url = self._job(job, "status_url")
        reply = await self._transport.call("status", url, request_id=handle.request_id)
        status = _wire.decode_status(reply.data, request_id=handle.request_id)
        return status if status.request_id else attrs.evolve(status, request_id=handle.request_id)

    async def result(self, job: JobHandle | str) -> ImageResult | None:
        """The finished job's images, or None while it is still queued or running.

        Raises :class:`~odiqueue.JobFailedError` or :class:`~odiqueue.JobCancelledError` when
        the job ended without images.
        """
        found = await self.result_or_status(job)
        if isinstance(found, ImageResult):
            return found
        raise_if_failed(found, found.request_id)
        return None

    async def result_or_status(self, job: JobHandle | str) -> ImageResult | JobStatus:
        """One request to the response URL: the images if the job is done, else its status.

        Polling this instead of :meth:`status` saves the separate result request once the
        job completes (the API answers "not ready" with the status). Servers that answer
        "still in progress" without a status give ``Running``.
        """
        handle, url = self._job(job, "response_url")
        reply = await self._transport.call(
            "result", url, request_id=handle.request_id, tolerate=_wire.result_not_ready
        )
        if reply.status == 400:
            return Running(handle.request_id)
        parsed = _wire.decode_result(reply.data, request_id=handle.request_id)
        if parsed.request_id:
            return parsed
        return attrs.evolve(parsed, request_id=handle.request_id)

    async def cancel(self, job: JobHandle | str) -> CancelOutcome:
        """Ask the server to cancel the job.

        Returns ``CancelOutcome.ALREADY_COMPLETED`` (not an error) when the job had already
        finished; raises :class:`~odiqueue.NotFoundError` for an unknown id.
        """
        handle, url = self._job(job, "cancel_url")
        reply = await self._transport.call(
            "cancel", url, request_id=handle.request_id, tolerate=_wire.cancel_came_late
        )
        outcome = _wire.decode_cancel(reply.data, request_id=handle.request_id)
        log.info("cancel of request %s: %s", handle.request_id, outcome.value)
        return outcome

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

        The file is checked to be non-empty, as long as the server announced, and a whole
        image of the expected format (from ``expected_format`` or the image's content type),
        as the client's :class:`DownloadPolicy` says (its structure, or a full decode); a
        download that fails the check, or is slower than the policy allows, is retried like
        any idempotent GET. An existing file is kept unless ``overwrite``:
        :class:`~odiqueue.OutputFileExistsError` is raised, except when it holds the very same
        bytes (it is this image already); a file that cannot be written (a full disk, no
        permission) raises :class:`~odiqueue.OutputFileError`. Image hosts other than the
        API's origin never receive the API key; an error status from an image host raises
        :class:`~odiqueue.ImageDownloadError`.
        """
        self._require_open()
        target = Path(path)
        policy = self._downloads
        try:
            return await save_image(
                self._transport, image, target, overwrite, expected_format, request_id, policy
            )
        except FileExistsError as exc:
            raise OutputFileExistsError(str(exc), request_id=request_id) from exc
        except OSError as exc:
            # Network errors arrive translated (TransportError): an OSError here is the disk's.
            raise OutputFileError(
                f"could not write {target}: {exc}", request_id=request_id
            ) from exc

    def generate_many(
        self,
        items: Iterable[Item] | AsyncIterable[Item],
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
    ) -> Batch:
        """Generate many images into ``out_dir``, yielding each item's :class:`Outcome`.

        >>> async with client.generate_many(["a red mug", "a blue mug"], "out") as outcomes:
        ...     async for outcome in outcomes:
        ...         print(outcome.key, outcome.paths if outcome.ok else outcome.error)

        An item is a prompt, an :class:`ImageRequest`, or a ``(key, ImageRequest)`` pair; the
        key names the item across runs (default: a hash of the request and its occurrence).
        Items are read lazily from any iterable or async iterable. Outcomes come in
        completion order.

        The keywords are :class:`BatchOptions`' fields (each documented there, with its
        default). ``on_progress`` is called with a :class:`Progress` snapshot at every change.
        """
        from odiqueue._batch import Batch  # the engine builds on the client, never the reverse

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
            max_images=max_images,
            max_cost=max_cost,
            prices=PriceTable() if prices is None else prices,
        )
        return Batch(self, items, Path(out_dir), options, on_progress)

    def _handle(self, job: JobHandle | str) -> JobHandle:
        self._require_open()
        return self.attach(job) if isinstance(job, str) else job

    def _job(
        self, job: JobHandle | str, what: Literal["status_url", "response_url", "cancel_url"]
    ) -> tuple[JobHandle, URL]:
        """The job's handle and its URL ``what``, refused if it points away from the API."""
        handle = self._handle(job)
        raw: str = getattr(handle, what)
        return handle, self._transport.routes.check_api_url(
            raw, what=what, request_id=handle.request_id
        )
