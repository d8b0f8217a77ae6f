"""The single-job commands: ``submit``, ``status``, ``result`` and ``cancel``, one call each."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from odiqueue._cli._args import (
    EXIT_FAILED,
    EXIT_OK,
    client_for,
    emulator_client,
    request_params,
)
from odiqueue._models import CancelOutcome, Queued, Running
from odiqueue._request import ImageRequest, OutputFormat

__all__ = ["single_job"]


async def single_job(args: argparse.Namespace) -> int:
    """Run one of the single-job commands; returns the exit code."""
    output = args.output
    detail: dict[str, Any]
    async with emulator_client(args) if args.emulator else client_for(args) as client:
        if args.command == "submit":
            handle = await client.submit(ImageRequest(args.prompt, **request_params(args)))
            detail = {
                "request_id": handle.request_id,
                "status_url": handle.status_url,
                "response_url": handle.response_url,
                "cancel_url": handle.cancel_url,
            }
            _print(output, handle.request_id, handle.status_url, detail, handle.request_id)
            return EXIT_OK
        handle = client.attach(args.request_id)
        if args.command == "status":
            status = await client.status(handle)
            state = type(status).__name__.lower()
            detail = {"request_id": handle.request_id, "state": state}
            words = state
            if isinstance(status, Queued) and status.position is not None:
                detail["position"] = status.position
                words += f" (position {status.position})"
            if isinstance(status, Running) and status.progress is not None:
                detail["progress"] = status.progress
                words += f" ({status.progress:.0%})"
            if hasattr(status, "error"):
                detail["error"] = status.error
                detail["error_type"] = getattr(status, "error_type", None)
                words += f": {status.error}"
            _print(output, handle.request_id, handle.status_url, detail, words)
            return EXIT_OK
        if args.command == "cancel":
            outcome = await client.cancel(handle)
            words = (
                "cancellation requested"
                if outcome is CancelOutcome.REQUESTED
                else "already completed: nothing to cancel"
            )
            detail = {"request_id": handle.request_id, "outcome": outcome.value}
            _print(output, handle.request_id, handle.cancel_url, detail, words)
            return EXIT_OK
        result = await client.result(handle)
        if result is None:
            print(f"odiqueue: {handle.request_id} is not finished yet", file=sys.stderr)
            return EXIT_FAILED
        paths = []
        for index, image in enumerate(result.images):
            # A first guess from the content type; the bytes decide (renamed below).
            extension = (image.format or OutputFormat.PNG).extension
            target = args.out / f"{handle.request_id}_{index}.{extension}"
            saved = await client.download(image, target, request_id=handle.request_id)
            paths.append(_named_by_format(saved.path, saved.format))
        urls = [image.url or "(inline)" for image in result.images]
        detail = {
            "request_id": handle.request_id,
            "images": [{"url": u, "path": str(p)} for u, p in zip(urls, paths, strict=True)],
        }
        _print(output, handle.request_id, "\n".join(urls), detail, "\n".join(map(str, paths)))
        return EXIT_OK


def _named_by_format(path: Path, fmt: str) -> Path:
    """``path`` with the extension of the format the bytes turned out to be: a result shape
    without a content type gives no hint, and a webp must not be left named ``.png``."""
    extension = "gif" if fmt == "gif" else OutputFormat(fmt).extension
    right = path.with_suffix(f".{extension}")
    if right == path or right.exists():
        return path
    path.rename(right)
    return right


def _print(output: str, request_id: str, url: str, detail: dict[str, Any], words: str) -> None:
    text = {"id": request_id, "url": url, "json": json.dumps(detail), "text": words}[output]
    print(text, flush=True)
