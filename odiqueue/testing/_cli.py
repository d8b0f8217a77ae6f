"""The emulator's command line, for benchmarks and manual tries in another process.

It lives here rather than in ``__main__`` so the package can export :func:`main` without
importing ``__main__`` early, which ``python -m`` would warn about.

Example::

    odiqueue emulator --port 8000 --workers 8 --job-seconds 20 --time-scale 0.05
    curl http://127.0.0.1:8000/_emulator/stats
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import sys
from typing import TYPE_CHECKING

from odiqueue.testing._config import (
    CALLS,
    DEFAULT_PORT,
    DEFAULT_PREFIX,
    ERROR_STYLES,
    FAILURE_TYPES,
    NOT_READY_STYLES,
    RESULT_SHAPES,
    STATUS_SPELLINGS,
    SUBMIT_SHAPES,
    EmulatorConfig,
    Faults,
)
from odiqueue.testing._server import Emulator

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["build_parser", "config_from_args", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``odiqueue emulator`` (also ``python -m odiqueue.testing``)."""
    parser = argparse.ArgumentParser(
        prog="odiqueue emulator",
        description="Serve a local emulator of the gpt_image_1 queue API and its image CDN.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    add(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="API port, 0 for any free one (default: %(default)s)",
    )
    add("--cdn-port", type=int, default=0, help="image port (default: 0, any free one)")
    add("--allow-remote", action="store_true", help="allow a non-loopback --host (default: off)")
    add("--prefix", default=DEFAULT_PREFIX, help="path before /v1/queue (default: %(default)s)")
    add("--api-key", default=None, help="the only key accepted (default: any non-empty key)")
    add(
        "--credits",
        type=int,
        default=None,
        help="credits to spend, n per submit (default: unlimited)",
    )
    add("--workers", type=int, default=None, help="jobs that run at once (default: unlimited)")
    add(
        "--job-seconds",
        type=float,
        default=0.0,
        help="median emulated job time (default: %(default)s)",
    )
    add(
        "--duration-sigma",
        type=float,
        default=0.0,
        help="log-normal spread of job times (default: %(default)s)",
    )
    add(
        "--time-scale",
        type=float,
        default=1.0,
        help="real seconds per emulated second (default: %(default)s)",
    )
    add("--seed", type=int, default=0, help="seed of every random draw (default: %(default)s)")
    add(
        "--submit-shape",
        choices=SUBMIT_SHAPES,
        default="documented",
        help="submit reply shape (default: %(default)s)",
    )
    add(
        "--status-spelling",
        choices=STATUS_SPELLINGS,
        default="upper",
        help="status values (default: %(default)s)",
    )
    add(
        "--error-style",
        choices=ERROR_STYLES,
        default="string",
        help="job error shape (default: %(default)s)",
    )
    add(
        "--progress",
        action="store_true",
        help="add progress to running status replies (default: off)",
    )
    add(
        "--not-ready-style",
        choices=NOT_READY_STYLES,
        default="202",
        help="result reply before completion (default: %(default)s)",
    )
    add(
        "--result-shape",
        choices=RESULT_SHAPES,
        default="outputs",
        help="result body shape (default: %(default)s)",
    )
    add(
        "--image-bytes",
        type=int,
        default=None,
        help="pad each image to about this size (default: natural size)",
    )
    add(
        "--same-images",
        action="store_true",
        help="one image per format and size, drawn once (default: each job its own colours "
        "and the start of its prompt)",
    )
    add(
        "--fail-rate",
        type=float,
        default=0.0,
        help="share of jobs ending INFERENCE_FAILURE (default: %(default)s)",
    )
    add(
        "--fail",
        action="append",
        default=[],
        metavar="TYPE=RATE",
        help=(
            f"share of jobs ending with TYPE, one of {', '.join(sorted(FAILURE_TYPES))}; "
            "repeatable (default: none)"
        ),
    )
    for fault, what in (
        ("429", "answer 429 rate limited"),
        ("500", "answer 500"),
        ("502", "answer 502 with a proxy's HTML page"),
        ("503", "answer 503"),
        ("reset", "drop the connection without a reply"),
        ("slow", "do the call, then wait --slow-seconds before replying"),
        ("malformed", "answer 200 with invalid JSON (API calls)"),
        ("truncated", "send half an image, then close (image calls)"),
    ):
        add(
            f"--rate-{fault}",
            type=float,
            default=0.0,
            help=f"share of calls to {what} (default: 0)",
        )
    add(
        "--retry-after",
        default="1",
        help="Retry-After seconds on 429, or 'none' (default: %(default)s)",
    )
    add(
        "--slow-seconds",
        type=float,
        default=5.0,
        help="delay of a slow reply (default: %(default)s)",
    )
    add(
        "--fault-calls",
        default=",".join(sorted(CALLS)),
        help="comma-separated calls the HTTP faults hit (default: %(default)s)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """Turn parsed arguments into a config; raises ValueError on values it cannot accept."""
    rates: dict[str, float] = {}
    if args.fail_rate:
        rates["INFERENCE_FAILURE"] = args.fail_rate
    for item in args.fail:
        error_type, equals, rate = item.partition("=")
        if not equals:
            raise ValueError(f"--fail expects TYPE=RATE, got {item!r}")
        rates[error_type.strip().upper()] = float(rate)
    retry_after = None if args.retry_after.lower() == "none" else float(args.retry_after)
    faults = Faults(
        rate_429=args.rate_429,
        rate_500=args.rate_500,
        rate_502=args.rate_502,
        rate_503=args.rate_503,
        rate_reset=args.rate_reset,
        rate_slow=args.rate_slow,
        rate_malformed=args.rate_malformed,
        rate_truncated=args.rate_truncated,
        retry_after=retry_after,
        slow_seconds=args.slow_seconds,
        job_failure_rates=rates,
        calls=frozenset(c.strip() for c in args.fault_calls.split(",") if c.strip()),
    )
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        cdn_port=args.cdn_port,
        prefix=args.prefix,
        api_key=args.api_key,
        credits=args.credits,
        workers=args.workers,
        job_seconds=args.job_seconds,
        duration_sigma=args.duration_sigma,
        time_scale=args.time_scale,
        seed=args.seed,
        submit_shape=args.submit_shape,
        status_spelling=args.status_spelling,
        error_style=args.error_style,
        progress=args.progress,
        not_ready_style=args.not_ready_style,
        result_shape=args.result_shape,
        image_bytes=args.image_bytes,
        same_images=args.same_images,
        faults=faults,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _serve(config: EmulatorConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Windows has no loop signal handlers; Ctrl-C then arrives as KeyboardInterrupt.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with Emulator(config) as emulator:
        api_root = emulator.base_url.removesuffix(config.prefix)
        print(f"odiqueue emulator API: {emulator.base_url}", flush=True)
        print(f"  submit to {emulator.base_url}/v1/queue/gpt_image_1", flush=True)
        print(f"odiqueue emulator CDN: {emulator.cdn_url}", flush=True)
        print(f"  counters at {api_root}/_emulator/stats", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM; return the process exit code (0 after a clean stop)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.allow_remote and not _is_loopback(args.host):
        parser.error(
            f"--host {args.host} is not a loopback address; add --allow-remote to serve it"
        )
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(_serve(config))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: cannot serve on {args.host}: {exc}", file=sys.stderr)
        return 1
    return 0
