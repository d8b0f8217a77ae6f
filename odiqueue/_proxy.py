"""Which proxy, if any, a request goes through: the rules of ``HTTPS_PROXY`` and friends.

The rules are the ones requests, httpx and curl follow, written out here (rather than left
to aiohttp's ``trust_env``) so they are ours, tested, and the same for every call:

- ``https_proxy``/``HTTPS_PROXY`` serves https URLs, ``http_proxy``/``HTTP_PROXY`` plain
  http ones, and ``all_proxy``/``ALL_PROXY`` either when its own variable is unset. The
  lower-case spelling wins over the upper-case one; an empty value is unset. Under CGI
  (``REQUEST_METHOD`` set) ``HTTP_PROXY`` is ignored, since a client's ``Proxy:`` header
  arrives as that very variable ("httpoxy"); ``http_proxy`` still counts.
- A value without a scheme (``proxy.corp:3128``) means ``http://``. Only ``http://`` and
  ``https://`` proxies are supported; credentials (``http://user:pass@host:port``) are sent
  in a ``Proxy-Authorization`` header and shown masked (``user:***``) everywhere else.
- ``no_proxy``/``NO_PROXY`` lists hosts reached directly, separated by commas or spaces:
  ``*`` (every host), a domain (``example.com`` or ``.example.com``: that name and every
  name under it), an IP address or a CIDR network (``10.0.0.0/8``), each optionally with
  ``:port`` (``[::1]:8080`` for IPv6). Names are compared without case or trailing dot.
- ``localhost``, ``127.0.0.1`` and ``[::1]`` are always reached directly: a proxy
  elsewhere cannot reach this machine's loopback (Go's rule; the emulator lives there).
- An explicit proxy (``AsyncClient(proxy=...)``) replaces the proxy variables for every
  URL; ``NO_PROXY`` still applies to it while the environment is trusted.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Mapping
from typing import Final

import attrs
from yarl import URL

from odiqueue._errors import ConfigurationError

__all__ = ["Proxy", "ProxySettings", "mask_url", "select_proxy"]

#: Target schemes and, for each, the variables naming its proxy, in order of preference.
_VARIABLES: Final = {
    "https": ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"),
    "http": ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"),
}
_NO_PROXY: Final = ("no_proxy", "NO_PROXY")
#: Hosts never sent through a proxy.
_ALWAYS_DIRECT: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_SEPARATORS: Final = re.compile(r"[,\s]+")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class Proxy:
    """A proxy to send requests through: its URL without credentials, and the
    ``Proxy-Authorization`` value those credentials make (None without any)."""

    url: URL
    #: Where the proxy was named (``HTTPS_PROXY``, ``proxy=``), for messages.
    source: str
    #: Shown instead of the URL: its password masked.
    shown: str
    authorization: str | None = attrs.field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.shown} (from {self.source})"


def mask_url(raw: str) -> str:
    """``raw`` with any password replaced by ``***`` (for messages and logs)."""
    try:
        url = URL(raw)
    except (ValueError, TypeError):
        return "<a URL that does not parse>"
    if url.password is not None:
        return str(url.with_password("***"))
    if url.user is not None:
        # A name alone may be a token (``http://TOKEN@proxy``): all of it is masked.
        return str(url.with_user("***"))
    return raw


@attrs.frozen
class _Rule:
    """One ``NO_PROXY`` entry."""

    domain: str | None = None
    network: _Network | None = None
    port: int | None = None

    def matches(
        self, host: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, port: int | None
    ) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return ip is not None and ip.version == self.network.version and ip in self.network
        assert self.domain is not None
        return host == self.domain or host.endswith("." + self.domain)


@attrs.frozen
class ProxySettings:
    """The proxies in force for each target scheme, and the hosts that bypass them.

    Built once per client (:meth:`from_env`); the transport keeps :meth:`for_url`'s answer
    per origin, so the ``NO_PROXY`` rules run once per host.
    """

    https: Proxy | None = None
    http: Proxy | None = None
    bypass_all: bool = False
    rules: tuple[_Rule, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether no URL goes through a proxy."""
        return (self.https is None and self.http is None) or self.bypass_all

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], *, proxy: str | None = None, trust_env: bool = True
    ) -> ProxySettings:
        """The settings from ``env`` (ignored unless ``trust_env``) and an explicit ``proxy``.

        Raises :class:`ConfigurationError` naming the variable (or ``proxy``) whose value is
        not a usable proxy URL, with any password masked.
        """
        https: Proxy | None = None
        http: Proxy | None = None
        if proxy is not None:
            https = http = _parse_proxy(proxy, "proxy")
        elif trust_env:
            https = _from_variables(env, _VARIABLES["https"])
            http = _from_variables(env, _VARIABLES["http"])
        if not trust_env:
            return cls(https=https, http=http)
        no_proxy = _first(env, _NO_PROXY)
        bypass_all, rules = _parse_no_proxy(no_proxy[1] if no_proxy else "")
        return cls(https=https, http=http, bypass_all=bypass_all, rules=rules)

    def for_url(self, url: URL) -> Proxy | None:
        """The proxy for a request to ``url``, or None to connect directly."""
        chosen = self.https if url.scheme == "https" else self.http
        if chosen is None or self.bypass_all:
            return None
        host = (url.host or "").lower().rstrip(".").strip("[]")
        if host in _ALWAYS_DIRECT:
            return None
        if self.rules:
            try:
                ip = ipaddress.ip_address(host.split("%", 1)[0])
            except ValueError:
                ip = None
            port = url.port
            if any(rule.matches(host, ip, port) for rule in self.rules):
                return None
        return chosen


def select_proxy(
    target: URL | str, env: Mapping[str, str], proxy: str | None = None
) -> Proxy | None:
    """The proxy a request to ``target`` goes through, given the environment ``env`` and an
    explicit ``proxy`` URL; None to connect directly. (The rules are in the module doc.)"""
    url = target if isinstance(target, URL) else URL(target)
    return ProxySettings.from_env(env, proxy=proxy).for_url(url)


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    """The first of ``names`` set in ``env`` to something other than blanks: (name, value)."""
    for name in names:
        if name == "HTTP_PROXY" and "REQUEST_METHOD" in env:
            continue  # httpoxy: under CGI this variable is the client's "Proxy:" header
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def _from_variables(env: Mapping[str, str], names: tuple[str, ...]) -> Proxy | None:
    found = _first(env, names)
    return None if found is None else _parse_proxy(found[1], found[0])


def _parse_proxy(raw: str, source: str) -> Proxy:
    """A proxy URL as written in ``source``, checked; credentials moved to a header."""
    text = raw.strip()
    if "://" not in text:
        text = "http://" + text
    shown = mask_url(text)
    try:
        url = URL(text)
        url.port  # noqa: B018 (yarl checks a port only when asked)
    except (ValueError, TypeError):
        raise ConfigurationError(f"{source}={shown!r} is not a proxy URL") from None
    if url.scheme not in ("http", "https"):
        raise ConfigurationError(
            f"{source}={shown!r}: only http:// and https:// proxies are supported, "
            f"not {url.scheme}://"
        )
    if not url.host:
        raise ConfigurationError(f"{source}={shown!r} names no proxy host")
    authorization = None
    if url.user is not None or url.password is not None:
        pair = f"{url.user or ''}:{url.password or ''}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode("ascii")
    bare = url.with_user(None).with_path("").with_query(None).with_fragment(None)
    return Proxy(url=bare, source=source, shown=shown, authorization=authorization)


def _parse_no_proxy(value: str) -> tuple[bool, tuple[_Rule, ...]]:
    rules: list[_Rule] = []
    for entry in _SEPARATORS.split(value.strip().lower()):
        if not entry:
            continue
        if entry == "*":
            return True, ()
        rule = _parse_rule(entry)
        if rule is not None:
            rules.append(rule)
    return False, tuple(rules)


def _parse_rule(entry: str) -> _Rule | None:
    host, port = entry, None
    if "://" in entry:  # "http://example.com": the scheme adds nothing here
        host = entry.split("://", 1)[1]
    host = host.rstrip("/")
    if host.startswith("["):  # [v6] or [v6]:port
        inside, _, rest = host[1:].partition("]")
        host = inside
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif host.count(":") == 1:  # name:port or v4:port (a bare v6 has several colons)
        name, _, digits = host.partition(":")
        if not digits.isdigit():
            return None
        host, port = name, int(digits)
    try:
        return _Rule(network=ipaddress.ip_network(host, strict=False), port=port)
    except ValueError:
        pass
    domain = host.removeprefix("*").lstrip(".").rstrip(".")
    return _Rule(domain=domain, port=port) if domain else None
