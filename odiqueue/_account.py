"""Which service, with which key: the API key (kept secret), the base URL (a provider's
preset or your own), and the URL checks both need.

The key comes from ``api_key=`` or ``$ODIQUEUE_API_KEY`` and is shown as ``…abcd`` at most;
the base URL from ``base_url=``, ``$ODIQUEUE_BASE_URL`` or a ``provider`` preset, plain http
only for loopback unless asked for, and shown with its password and query masked.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from typing import Final

from yarl import URL

from odiqueue._errors import ConfigurationError

__all__ = [
    "ENV_API_KEY",
    "ENV_BASE_URL",
    "PRESETS",
    "Secret",
    "is_loopback",
    "origin_of",
    "parse_url",
    "resolve_api_key",
    "resolve_base_url",
    "shown_url",
]

ENV_API_KEY: Final = "ODIQUEUE_API_KEY"
ENV_BASE_URL: Final = "ODIQUEUE_BASE_URL"
DEFAULT_PROVIDER: Final = "odirouter"
PRESETS: Final = {
    "odirouter": "https://odirouter.ai/model",
    "seaart": "https://cloud.seaart.ai/model",
}


class Secret:
    """An API key that never shows itself: its repr and str end in at most its last four
    characters (``sk-…abcd``)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The key itself, for the Authorization header only."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self})"

    def __str__(self) -> str:
        # Short keys show nothing: four characters of eight would be half the key.
        tail = self._value[-4:] if len(self._value) >= 16 else ""
        return f"…{tail}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def resolve_api_key(api_key: str | Secret | None) -> Secret:
    """The key given, else ``$ODIQUEUE_API_KEY``; a clear error when neither is set."""
    if isinstance(api_key, Secret):
        return api_key
    value = api_key if api_key is not None else os.environ.get(ENV_API_KEY, "")
    value = value.strip()
    if not value:
        raise ConfigurationError(
            f"no API key: pass api_key=... or set the {ENV_API_KEY} environment variable"
        )
    bad = next((i for i, c in enumerate(value) if c.isspace() or not c.isprintable()), None)
    if bad is not None:
        raise ConfigurationError(
            f"the API key contains {_character_name(value[bad])} at position {bad + 1} (of "
            f"{len(value)}): copy the key again without it"
        )
    if not value.isascii():
        # An HTTP header carries ASCII: anything else is a paste gone wrong ("…", quotes).
        raise ConfigurationError("the API key contains characters other than ASCII")
    return Secret(value)


def _character_name(char: str) -> str:
    """How a character that has no place in a key is called in a message."""
    names = {"\t": "a tab", " ": "a space", "\n": "a line break", "\r": "a line break"}
    if char in names:
        return names[char]
    kind = "a blank" if char.isspace() else "a control character"
    return f"{kind} (U+{ord(char):04X})"


def shown_url(raw: str) -> str:
    """``raw`` as it may be shown: its user, password and query values masked (works on
    text that does not parse as a URL too)."""
    shown = _USERINFO.sub(lambda m: "//" + ":".join("***" for _ in m[1].split(":", 1)) + "@", raw)

    def query(match: re.Match[str]) -> str:
        parts = match[1].split("&")
        return "?" + "&".join(p.split("=", 1)[0] + "=***" if "=" in p else "***" for p in parts)

    return _QUERY.sub(query, shown)


def resolve_base_url(
    base_url: str | None, provider: str | None, *, allow_insecure_http: bool = False
) -> URL:
    """Pick the base URL: an explicit one, else ``$ODIQUEUE_BASE_URL``, else a preset.

    Plain ``http`` is accepted only for loopback addresses (the emulator) unless
    ``allow_insecure_http`` is set, because the API key would travel in clear text.
    """
    if base_url is None and provider is not None:
        if provider not in PRESETS:
            raise ConfigurationError(
                f"provider={provider!r} is unknown: use one of {', '.join(sorted(PRESETS))} "
                "or pass base_url"
            )
        raw = PRESETS[provider]
    else:
        raw = base_url or os.environ.get(ENV_BASE_URL) or PRESETS[DEFAULT_PROVIDER]
    shown = shown_url(raw)
    if shown != raw:
        raise ConfigurationError(
            f"base_url={shown!r} must not carry credentials or a query (masked here)"
        )
    try:
        url = parse_url(raw.rstrip("/"))
    except ValueError as exc:
        raise ConfigurationError(f"base_url={raw!r} is not a URL: {exc}") from None
    if (
        url.scheme not in ("http", "https")
        or not url.host
        or not _HOST.fullmatch(url.raw_host or "")
    ):
        raise ConfigurationError(f"base_url={raw!r} must be an absolute http(s) URL")
    if url.user or url.password or url.query_string or url.fragment:
        raise ConfigurationError(f"base_url={raw!r} must not carry credentials, query or fragment")
    if url.scheme == "http" and not allow_insecure_http and not is_loopback(url.host):
        raise ConfigurationError(
            f"base_url={raw!r} uses plain http to a remote host, which would send the API key "
            "in clear text: use https, or pass allow_insecure_http=True"
        )
    return url


def parse_url(raw: str) -> URL:
    """``raw`` as a URL, checked whole: yarl checks a port (and some hosts) only when asked,
    so a bad one would otherwise raise later, far from where the text came in. Raises
    ``ValueError``."""
    url = URL(raw)
    url.port  # noqa: B018 (the check is the point)
    return url


# A URL's user and password ("//user:password@"), and its query ("?..." up to a fragment).
_USERINFO: Final = re.compile(r"//([^/?#@]*)@")
_QUERY: Final = re.compile(r"\?([^#]*)")
# What a host name or address may hold (yarl lets a space through).
_HOST: Final = re.compile(r"[A-Za-z0-9._\-:\[\]%]+")


@functools.lru_cache(maxsize=64)
def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def origin_of(url: URL) -> tuple[str, str, int | None]:
    """The (scheme, host, port) triple that decides where the API key may be sent."""
    return (url.scheme, (url.host or "").lower(), url.port)
