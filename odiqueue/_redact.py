"""The API key cut out of everything the network sends back, before anything reads it.

A server may quote the key it was sent: in an error message, a job's ``error`` text, a
header (``X-Request-Id: Bearer sk-...``), even as a status value. Whatever reads a reply
(errors, logs, the manifest, failed.csv, the command line's output) would then show it, so
the transport passes every reply body and header through one :class:`Redactor` first.

The key is found as sent, JSON-escaped (``\\/`` for ``/``, ``\\uXXXX`` for any character) and
URL-encoded (``%2F`` or ``%2f``, ``+`` for a space), and replaced by the masked form
``Secret`` shows (``…abcd``). A key shorter than ``MIN_KEY_CHARS`` is no real key (a test's
placeholder): cutting it out would mangle every reply, so it is left alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote, quote_plus

from multidict import CIMultiDict, CIMultiDictProxy

from odiqueue._account import Secret

__all__ = ["Redactor"]

MIN_KEY_CHARS: Final = 8
_PERCENT = re.compile(r"%[0-9A-F]{2}")
_UNESCAPED = re.compile(r"[A-Za-z0-9._~-]+")


class Redactor:
    """Replaces every encoded form of one key by its masked form."""

    def __init__(self, key: Secret) -> None:
        raw = key.reveal()
        self.masked = str(key)
        forms = {
            raw,
            json.dumps(raw)[1:-1],
            json.dumps(raw)[1:-1].replace("/", "\\/"),
            quote(raw, safe=""),
            quote(raw, safe="/"),
            quote_plus(raw),
        }
        # Percent-encoding is case-insensitive in its hex digits.
        forms |= {_PERCENT.sub(lambda m: m.group().lower(), form) for form in forms}
        # Longest first: a form that holds another is replaced whole.
        real = len(raw) >= MIN_KEY_CHARS
        self._text = sorted((form for form in forms if real), key=len, reverse=True)
        self._bytes = [form.encode() for form in self._text]
        self._masked_bytes = self.masked.encode()
        # The longest run of the key that every form spells alike (escaping and encoding
        # leave these characters be): one search for it rules out every form at once.
        runs = _UNESCAPED.findall(raw) if real else []
        self._anchor = max(runs, key=len, default="").encode()

    def text(self, value: str) -> str:
        """``value`` without the key in any of its forms."""
        for form in self._text:
            if form in value:
                value = value.replace(form, self.masked)
        return value

    def body(self, body: bytes) -> bytes:
        """A reply body without the key: replaced as bytes, and inside JSON strings whose
        escapes (``\\uXXXX``) spell it in a way no byte pattern can catch."""
        if not self._anchor or self._anchor in body:
            for form in self._bytes:
                if form in body:
                    body = body.replace(form, self._masked_bytes)
        # (One byte first: its search is memchr, many times faster than a two-byte one.)
        if b"\\" not in body or b"\\u" not in body:
            return body
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            return body
        cleaned = self._walk(parsed)
        if cleaned == parsed:
            return body
        return json.dumps(cleaned, ensure_ascii=False).encode()

    def headers(self, headers: CIMultiDictProxy[str]) -> CIMultiDictProxy[str]:
        """``headers`` as they are, or a copy with the key cut out of their values."""
        if not any(self.text(value) != value for value in headers.values()):
            return headers
        return CIMultiDictProxy(CIMultiDict((k, self.text(v)) for k, v in headers.items()))

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self._walk(item) for item in value]
        if isinstance(value, Mapping):
            return {self.text(str(k)): self._walk(v) for k, v in value.items()}
        return value
