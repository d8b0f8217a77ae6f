"""What the emulator has seen: one :class:`JobRecord` per job and the :class:`Stats` counters.

Both are plain mutable records that the server updates and tests read. Every time is a
:func:`time.monotonic` value in the emulator's process, so tests in the same process can
compare them with their own clock readings.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs

__all__ = ["KINDS", "JobRecord", "Stats"]

#: Request kinds, in the order a job meets them.
KINDS: tuple[str, ...] = ("submit", "status", "result", "cancel", "image")


@attrs.define(kw_only=True, eq=False)
class JobRecord:
    """One submitted job, as the server sees it.

    The scheduler brings these up to date lazily, whenever a request arrives or
    :attr:`Emulator.stats` is read; so read them through ``emu.stats.jobs``.

    Example::

        job = emu.stats.jobs[request_id]
        assert job.cancelled and job.error_type == "CANCELED"
        lag = job.first_seen_completed_at - job.completed_at  # how late the client noticed
    """

    #: The id the submit reply gave (``mmsu_`` + 26 characters).
    request_id: str
    #: The model segment of the submit path (``gpt_image_1``).
    model: str
    #: The submitted parameter object, as received.
    params: dict[str, Any]
    #: When the submit was accepted.
    submitted_at: float
    #: Run time drawn for the job, in emulated seconds (``metrics.inference_time``).
    emulated_seconds: float
    #: The same run time in real seconds (``emulated_seconds × time_scale``).
    run_seconds: float
    #: Error type the job will fail with when it finishes, or None to succeed.
    planned_error_type: str | None = None
    #: When a worker took the job (None while queued, or if cancelled in the queue).
    started_at: float | None = None
    #: The exact moment the job ended: success, failure or cancellation.
    completed_at: float | None = None
    #: When a status or result reply first reported the job completed.
    first_seen_completed_at: float | None = None
    #: Status requests for this job (faulted ones included).
    status_polls: int = 0
    #: Result requests for this job (faulted ones included).
    result_requests: int = 0
    #: Cancel requests for this job (faulted ones included).
    cancel_requests: int = 0
    #: The error type the job ended with (``CANCELED`` when cancelled), None on success.
    error_type: str | None = None
    #: True once a cancel request ended the job.
    cancelled: bool = False
    #: Place in the order jobs entered the queue (only meaningful while queued).
    seq: int = 0
    #: The kind of each input image reference, in order: ``url``, ``base64`` or ``data_uri``.
    input_kinds: tuple[str, ...] = ()
    #: Why the job fails, when the emulator decided it (an input it could not fetch).
    error_message: str | None = None
    #: A small copy of an edit's first input image, that its outputs are drawn from.
    thumbnail: tuple[int, int, bytes] | None = attrs.field(default=None, repr=False)

    @property
    def state(self) -> str:
        """``IN_QUEUE``, ``IN_PROGRESS`` or ``COMPLETED``, as of the last update."""
        if self.completed_at is not None:
            return "COMPLETED"
        return "IN_QUEUE" if self.started_at is None else "IN_PROGRESS"

    @property
    def succeeded(self) -> bool:
        """True once the job has completed without an error."""
        return self.completed_at is not None and self.error_type is None


def _per_kind() -> dict[str, int]:
    return dict.fromkeys((*KINDS, "all"), 0)


@attrs.define(kw_only=True, eq=False)
class Stats:
    """Live counters of one emulator; read them at any time through :attr:`Emulator.stats`.

    Example::

        stats = emu.stats
        assert stats.requests["submit"] == stats.jobs_created == 10
        assert stats.peak_running_jobs <= 4
        assert not any("Authorization" in h for h in stats.image_request_headers)
    """

    #: Requests received per kind (submit, status, result, cancel, image), faulted ones included.
    requests: Counter[str] = attrs.field(factory=Counter)
    #: Injected HTTP faults, keyed ``"<kind>:<fault>"`` (e.g. ``"submit:429"``).
    faults_injected: Counter[str] = attrs.field(factory=Counter)
    #: Jobs the server accepted (a faulted or refused submit creates none).
    jobs_created: int = 0
    #: Jobs accepted per model (the queue's path segment).
    jobs_by_model: Counter[str] = attrs.field(factory=Counter)
    #: Submits refused with 422 per model (validation, inline data refused).
    refused_by_model: Counter[str] = attrs.field(factory=Counter)
    #: Files received by the upload endpoint.
    uploads: int = 0
    #: Requests being handled right now, per kind and ``"all"`` (both origins together).
    concurrent_requests: dict[str, int] = attrs.field(factory=_per_kind)
    #: The most requests handled at once, per kind and ``"all"``.
    peak_concurrent_requests: dict[str, int] = attrs.field(factory=_per_kind)
    #: Jobs in progress as of the last update.
    running_jobs: int = 0
    #: Jobs submitted and not yet completed as of the last update.
    active_jobs: int = 0
    #: The most jobs in progress at once.
    peak_running_jobs: int = 0
    #: The most jobs submitted and not yet completed at once.
    peak_active_jobs: int = 0
    #: Credits left, or None when unlimited.
    credits_remaining: int | None = None
    #: Every job, by request id, in submit order.
    jobs: dict[str, JobRecord] = attrs.field(factory=dict)
    #: The headers of every request the CDN origin received, in order.
    image_request_headers: list[dict[str, str]] = attrs.field(factory=list)

    def request_started(self, kind: str) -> None:
        """Count one request of ``kind`` and raise the concurrency peaks if needed."""
        self.requests[kind] += 1
        current = self.concurrent_requests
        peaks = self.peak_concurrent_requests
        for key in (kind, "all"):
            current[key] += 1
            if current[key] > peaks[key]:
                peaks[key] = current[key]

    def request_finished(self, kind: str) -> None:
        """Mark one request of ``kind`` as answered (or dropped)."""
        self.concurrent_requests[kind] -= 1
        self.concurrent_requests["all"] -= 1

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary: counts, peaks and per-job timing lists (in submit order).

        ``timings`` holds, for the jobs where it applies: ``queue_seconds`` (submit to start),
        ``run_seconds`` (start to completion), ``report_lag_seconds`` (completion to the first
        reply reporting it) and ``turnaround_seconds`` (submit to that reply), plus the
        ``status_polls`` and ``result_requests`` of every job. ``first_submitted_at`` and
        ``last_completed_at`` are on the monotonic clock, for a run's ideal duration.
        """
        jobs = list(self.jobs.values())
        outcomes: Counter[str] = Counter(
            job.error_type or "OK" for job in jobs if job.completed_at is not None
        )
        return {
            "requests": dict(self.requests),
            "faults_injected": dict(self.faults_injected),
            "jobs_created": self.jobs_created,
            "jobs_by_model": dict(self.jobs_by_model),
            "refused_by_model": dict(self.refused_by_model),
            "uploads": self.uploads,
            "jobs_completed": sum(outcomes.values()),
            "outcomes": dict(outcomes),
            "running_jobs": self.running_jobs,
            "active_jobs": self.active_jobs,
            "peak_running_jobs": self.peak_running_jobs,
            "peak_active_jobs": self.peak_active_jobs,
            "concurrent_requests": dict(self.concurrent_requests),
            "peak_concurrent_requests": dict(self.peak_concurrent_requests),
            "credits_remaining": self.credits_remaining,
            "image_requests": len(self.image_request_headers),
            "image_requests_with_authorization": sum(
                1
                for headers in self.image_request_headers
                if any(name.lower() == "authorization" for name in headers)
            ),
            "first_submitted_at": min((job.submitted_at for job in jobs), default=None),
            "last_completed_at": max(
                (job.completed_at for job in jobs if job.completed_at is not None), default=None
            ),
            "timings": _timings(jobs),
        }


def _timings(jobs: list[JobRecord]) -> dict[str, list[float] | list[int]]:
    queue, run, lag, turnaround = [], [], [], []
    for job in jobs:
        if job.started_at is not None:
            queue.append(job.started_at - job.submitted_at)
            if job.completed_at is not None:
                run.append(job.completed_at - job.started_at)
        if job.completed_at is not None and job.first_seen_completed_at is not None:
            lag.append(job.first_seen_completed_at - job.completed_at)
            turnaround.append(job.first_seen_completed_at - job.submitted_at)
    return {
        "queue_seconds": queue,
        "run_seconds": run,
        "report_lag_seconds": lag,
        "turnaround_seconds": turnaround,
        "status_polls": [job.status_polls for job in jobs],
        "result_requests": [job.result_requests for job in jobs],
    }
