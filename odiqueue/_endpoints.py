"""Where a model's queue lives: the submit URL, and a job's three URLs from its id.

The providers document ``{base}/v1/queue/{model}`` for submits and
``.../requests/{id}/status|response|cancel`` for a job; a job known only by its id (a log,
a manifest, another process) is followed through exactly these.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote

from yarl import URL

from odiqueue._errors import ConfigurationError

__all__ = ["Endpoints", "check_model_name"]

#: A request id that is one URL path segment as it stands (no quoting, not "." or "..").
_PLAIN_ID: Final = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*")


def check_model_name(model: str, *, name: str = "model") -> str:
    """``model`` if it can be one path segment of the queue's URL, else ConfigurationError."""
    if (
        not model
        or not all(c.isalnum() or c in "_-./" for c in model)
        or ".." in model
        or model.startswith("/")
    ):
        raise ConfigurationError(f"{name}={model!r} must be a model name like 'gpt_image_1'")
    return model


class Endpoints:
    """The URLs of one model's queue under one base URL."""

    def __init__(self, base: URL, model: str) -> None:
        self.queue = base / "v1" / "queue" / check_model_name(model)
        self._requests = f"{self.queue / 'requests'}/"

    def job_urls(self, request_id: str) -> tuple[str, str, str]:
        """The status, response and cancel URLs of the job ``request_id``."""
        if _PLAIN_ID.fullmatch(request_id):
            # The usual id needs no quoting: plain text, no URL objects (once per job).
            job = self._requests + request_id
        else:
            job = str(self.queue / "requests" / quote(request_id, safe=""))
        return f"{job}/status", f"{job}/response", f"{job}/cancel"
