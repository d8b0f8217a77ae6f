"""Where a request may go: which URLs may receive the API key, and through which proxy.

The key goes to the API's own origin and to the hosts the caller named in
``allowed_hosts`` (over https, or plain http on loopback) and nowhere else: not to an image
host, not across a redirect to another origin, not to a status URL a server made up. The
transport asks here before every request, on every redirect hop.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from yarl import URL

from odiqueue._config import is_loopback, origin_of, parse_url
from odiqueue._errors import ConfigurationError, DecodeError, UnsafeURLError
from odiqueue._proxy import Proxy, ProxySettings

__all__ = ["Routes"]

#: How many origins' proxy choices are kept (image hosts can be many).
_PROXY_CHOICES_KEPT: Final = 256


class Routes:
    """The key's scope and the proxy choice of one client."""

    def __init__(
        self, api_origin: URL, allowed_hosts: Collection[str], proxies: ProxySettings | None
    ) -> None:
        self._trusted = {origin_of(api_origin)}
        # The API's own URLs, as this client writes them, start with this: such a URL is
        # trusted without parsing it (what follows the first "/" cannot change the origin).
        self._own_prefix = f"{api_origin.origin()}/"
        self._allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self._proxies = proxies if proxies is not None and not proxies.empty else None
        # The choice per origin: NO_PROXY's rules cost far more than a lookup.
        self._proxy_of: dict[tuple[str, str | None, int | None], Proxy | None] = {}

    def proxy_for(self, url: URL) -> Proxy | None:
        """The proxy a request to ``url`` goes through (None: directly)."""
        if self._proxies is None:
            return None
        origin = (url.scheme, url.host, url.port)
        try:
            return self._proxy_of[origin]
        except KeyError:
            if len(self._proxy_of) >= _PROXY_CHOICES_KEPT:
                self._proxy_of.clear()  # many image hosts: start over rather than grow
            chosen = self._proxy_of[origin] = self._proxies.for_url(url)
            return chosen

    def is_trusted(self, url: URL) -> bool:
        """Whether ``url`` may receive the API key: the API's origin or an allowed host.

        An allowed host is trusted over https, or over http only on loopback.
        """
        if origin_of(url) in self._trusted:
            return True
        host = (url.host or "").lower()
        named = host in self._allowed_hosts or f"{host}:{url.port}" in self._allowed_hosts
        return named and (url.scheme == "https" or (url.scheme == "http" and is_loopback(host)))

    def trusts(self, raw: str) -> bool:
        """:meth:`is_trusted` for a URL as text (one that does not parse is not trusted)."""
        if raw.startswith(self._own_prefix):
            return True
        try:
            return self.is_trusted(parse_url(raw))
        except ValueError:
            return False

    def check_api_url(self, raw: str, *, what: str, request_id: str | None) -> URL:
        """Refuse a status/response/cancel URL that points away from the API."""
        try:
            url = parse_url(raw)
            if raw.startswith(self._own_prefix):
                return url
            trusted = url.is_absolute() and self.is_trusted(url)
        except ValueError:
            raise DecodeError(
                f"the server gave a {what} that is not a URL: {raw[:80]!r}", request_id=request_id
            ) from None
        if not trusted:
            raise UnsafeURLError(
                f"the server gave a {what} on another origin ({url.scheme}://{url.host}): "
                "refused so the API key is not sent there; pass allowed_hosts=[...] to trust it",
                request_id=request_id,
            )
        return url

    def through(
        self, url: URL, headers: dict[str, str]
    ) -> tuple[URL | None, dict[str, str] | None]:
        """The proxy a request to ``url`` goes through (None: directly), and the headers for
        the proxy itself. https goes inside a CONNECT tunnel, so the proxy sees only the
        host and port; plain http goes in the open, so never with the key in ``headers``
        (:class:`ConfigurationError`); the proxy's own credentials are added to it then."""
        proxy = self.proxy_for(url)
        if proxy is None:
            return None, None
        if url.scheme == "https":
            if proxy.authorization is None:
                return proxy.url, None
            return proxy.url, {"Proxy-Authorization": proxy.authorization}
        if "Authorization" in headers:
            raise ConfigurationError(
                f"refusing to send the API key to {url.scheme}://{url.host}:{url.port} "
                f"through the proxy {proxy}: over plain http the proxy would read it. "
                "Use https, list the host in NO_PROXY, or pass trust_env=False"
            )
        if proxy.authorization is not None:
            headers["Proxy-Authorization"] = proxy.authorization
        return proxy.url, None
