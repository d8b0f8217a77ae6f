"""The JSON bodies the emulator answers with, one function per reply shape.

Each shape matches an example in ``tests/data`` (and the shared protocol notes); the config
picks the dialect: status spelling, error style and result shape. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import functools
import secrets
import time
import zlib
from typing import TYPE_CHECKING, Any

from odiqueue.testing._images import CONTENT_TYPES, EXTENSIONS, dimensions

if TYPE_CHECKING:
    from odiqueue.testing._config import EmulatorConfig
    from odiqueue.testing._scheduler import JobTable
    from odiqueue.testing._state import JobRecord

__all__ = ["ImageSpec", "Replies", "image_spec", "new_request_id"]

ERROR_MESSAGES: dict[str, str] = {
    "INFERENCE_FAILURE": "Task execution failed",
    "INFERENCE_TIMEOUT": "Task execution timed out",
    "REQUEST_INVALID": "The provider rejected the request",
    "CONTENT_BLOCKED": "Content blocked by safety policy",
    "CANCELED": "Task was canceled",
    "INTERNAL_SERVER_ERROR": "Internal server error",
}

_ALIASES = {"IN_QUEUE": "PENDING", "IN_PROGRESS": "PROCESSING"}

# Crockford's base32 in lower case, as ULIDs use: no i, l, o or u to misread.
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"

#: ``(output_format, width, height, alpha)`` of the images a job produces.
ImageSpec = tuple[str, int, int, bool]


def new_request_id() -> str:
    """A fresh ``mmsu_`` id: 10 characters of millisecond time and 16 random ones (a ULID)."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(secrets.token_bytes(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "mmsu_" + "".join(reversed(chars))


def image_spec(params: dict[str, Any]) -> ImageSpec:
    """What a job's images look like, from its (validated) parameters."""
    width, height = dimensions(params.get("size", "auto"))
    return (
        params.get("output_format", "png"),
        width,
        height,
        params.get("background") == "transparent",
    )


@functools.lru_cache(maxsize=16)
def _b64(data: bytes) -> str:
    # Results that inline images are asked for again and again; bytes cache their hash.
    return base64.b64encode(data).decode("ascii")


class Replies:
    """Builds reply bodies for one emulator, knowing its two origins and its dialect."""

    def __init__(self, config: EmulatorConfig, base_url: str, cdn_url: str) -> None:
        self._config = config
        self._base_url = base_url
        self._cdn_url = cdn_url

    def job_url(self, job: JobRecord, action: str) -> str:
        """The absolute ``status``, ``response`` or ``cancel`` URL of a job."""
        return f"{self._base_url}/v1/queue/{job.model}/requests/{job.request_id}/{action}"

    def submit(self, job: JobRecord) -> dict[str, Any]:
        """The submit reply: documented (id and three URLs) or terse (id and status)."""
        if self._config.submit_shape == "terse":
            return {"request_id": job.request_id, "status": self._spell(job, "IN_QUEUE")}
        return {
            "request_id": job.request_id,
            "response_url": self.job_url(job, "response"),
            "status_url": self.job_url(job, "status"),
            "cancel_url": self.job_url(job, "cancel"),
            # The providers document it as always 0 at submit, whatever the real queue is.
            "queue_position": 0,
        }

    def status(self, job: JobRecord, table: JobTable, now: float) -> tuple[int, dict[str, Any]]:
        """``(HTTP status, body)`` of a status reply: 202 while queued or running, else 200."""
        state = job.state
        body: dict[str, Any] = {"status": self._spell(job, state), "request_id": job.request_id}
        if state == "IN_QUEUE":
            body["queue_position"] = table.queue_position(job)
            body["response_url"] = self.job_url(job, "response")
            return 202, body
        body["response_url"] = self.job_url(job, "response")
        body["logs"] = []
        if state == "IN_PROGRESS":
            if self._config.progress:
                body["progress"] = _progress(job, now)
            return 202, body
        if job.error_type is not None:
            body.update(self.error_fields(job))
        else:
            body["metrics"] = {"inference_time": round(job.emulated_seconds, 3)}
        return 200, body

    def failed_result(self, job: JobRecord) -> dict[str, Any]:
        """The result body of a job that failed or was cancelled (served with HTTP 200)."""
        body: dict[str, Any] = {
            "request_id": job.request_id,
            "status": self._spell(job, "COMPLETED"),
        }
        body.update(self.error_fields(job))
        return body

    def error_fields(self, job: JobRecord) -> dict[str, Any]:
        """``error`` and ``error_type``, or the object style's ``error`` and ``provider_error``."""
        error_type = job.error_type or "INTERNAL_SERVER_ERROR"
        message = job.error_message or ERROR_MESSAGES.get(error_type, "Task execution failed")
        if self._config.error_style == "string":
            return {"error": message, "error_type": error_type}
        task_status = "CANCELED" if job.cancelled else "FAILED"
        return {
            "error": {"code": error_type, "message": message},
            "provider_error": {"code": error_type, "message": message, "task_status": task_status},
        }

    def result(self, job: JobRecord, image: bytes) -> dict[str, Any]:
        """The result body of a successful job, in the configured shape; ``image`` is its file."""
        output_format, width, height, _ = image_spec(job.params)
        content_type = CONTENT_TYPES[output_format]
        extension = EXTENSIONS[output_format]
        count: int = job.params.get("n", 1)
        urls = [
            f"{self._cdn_url}/images/{job.request_id}/{index}.{extension}" for index in range(count)
        ]
        shape = self._config.result_shape
        if shape in ("outputs", "images"):
            records = [
                {
                    "type": "image",
                    "url": url,
                    "content_type": content_type,
                    "file_name": f"{index}.{extension}",
                    "file_size": len(image),
                    "width": width,
                    "height": height,
                }
                for index, url in enumerate(urls)
            ]
            if shape == "outputs":
                prompt = job.params["prompt"]
                return {
                    "request_id": job.request_id,
                    "outputs": records,
                    "metadata": {"prompt": prompt},
                }
            for record in records:
                del record["type"]
            return {"images": records, "seed": zlib.crc32(job.request_id.encode())}
        if shape == "output_content":
            return {"output": [{"content": [{"type": "image", "url": url} for url in urls]}]}
        if shape == "data_uri":
            uri = f"data:{content_type};base64,{_b64(image)}"
            return {"outputs": [{"type": "image", "url": uri} for _ in urls]}
        items: list[dict[str, str]]
        if shape == "openai_b64":
            items = [{"b64_json": _b64(image)} for _ in urls]
        else:
            items = [{"url": url} for url in urls]
        return _openai(job, items, width, height)

    def _spell(self, job: JobRecord, state: str) -> str:
        spelling = self._config.status_spelling
        if spelling == "upper":
            return state
        if spelling == "lower":
            return state.lower()
        if state != "COMPLETED":
            return _ALIASES[state]
        if job.cancelled:
            return "CANCELLED"
        return "FAILED" if job.error_type is not None else "COMPLETED"


def _progress(job: JobRecord, now: float) -> float:
    if job.started_at is None or job.run_seconds <= 0:
        return 0.0
    return round(min(1.0, max(0.0, (now - job.started_at) / job.run_seconds)), 4)


def _openai(job: JobRecord, items: list[dict[str, str]], width: int, height: int) -> dict[str, Any]:
    params = job.params
    prompt_tokens = max(1, len(params["prompt"]) // 4)
    image_tokens = 1056 * len(items)
    background = params.get("background", "auto")
    quality = params.get("quality", "auto")
    return {
        "created": int(time.time()),
        "background": "opaque" if background == "auto" else background,
        "output_format": params.get("output_format", "png"),
        "quality": "medium" if quality == "auto" else quality,
        "size": f"{width}x{height}",
        "data": items,
        "usage": {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"image_tokens": 0, "text_tokens": prompt_tokens},
            "output_tokens": image_tokens,
            "total_tokens": prompt_tokens + image_tokens,
        },
    }
