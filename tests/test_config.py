"""Settings: the key never shows itself, base URLs are checked, presets resolve."""

from __future__ import annotations

import pytest

from odiqueue import AsyncClient, ClientClosedError, ConfigurationError, PollPolicy, RetryPolicy
from odiqueue._account import Secret, resolve_base_url

KEY = "sk-live-0123456789abcdefWXYZ"


def test_secret_shows_at_most_last_four() -> None:
    """A key's str and repr show only its last four characters."""
    secret = Secret(KEY)
    assert str(secret) == "…WXYZ"
    assert KEY not in repr(secret)
    assert str(Secret("short-key")) == "…"


def test_client_repr_hides_key() -> None:
    """The client's repr shows the base URL and a redacted key."""
    client = AsyncClient(KEY, base_url="http://127.0.0.1:9/model")
    assert KEY not in repr(client)
    assert "…WXYZ" in repr(client)


@pytest.mark.parametrize("pasted", ["sk-ключ0123456789", "sk-0123456789…", "“sk-0123456789”"])
def test_key_with_characters_other_than_ascii_is_refused(pasted: str) -> None:
    """A key that cannot be an HTTP header (a paste with an ellipsis or curly quotes) is
    refused when the client is made, before anything is sent."""
    with pytest.raises(ConfigurationError, match="ASCII"):
        AsyncClient(pasted, base_url="http://127.0.0.1:9/model")


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """ODIQUEUE_API_KEY is used when no key is passed."""
    monkeypatch.setenv("ODIQUEUE_API_KEY", KEY)
    assert "…WXYZ" in repr(AsyncClient())


def test_missing_key_says_how_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key at all raises an error naming the environment variable."""
    monkeypatch.delenv("ODIQUEUE_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="ODIQUEUE_API_KEY"):
        AsyncClient()


def test_presets_and_env_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Presets give the providers' base URLs; ODIQUEUE_BASE_URL overrides the default."""
    monkeypatch.delenv("ODIQUEUE_BASE_URL", raising=False)
    assert AsyncClient(KEY).base_url == "https://odirouter.ai/model"
    assert AsyncClient(KEY, provider="seaart").base_url == "https://cloud.seaart.ai/model"
    monkeypatch.setenv("ODIQUEUE_BASE_URL", "https://gw.example.test/model/")
    assert AsyncClient(KEY).base_url == "https://gw.example.test/model"
    with pytest.raises(ConfigurationError, match="odirouter, seaart"):
        AsyncClient(KEY, provider="nope")


@pytest.mark.parametrize(
    "url", ["ftp://x.test", "not a url", "https://user:pw@x.test", "https://x.test/?a=1"]
)
def test_bad_base_urls(url: str) -> None:
    """Base URLs that are not plain absolute http(s) URLs are refused."""
    with pytest.raises(ConfigurationError):
        resolve_base_url(url, None)


def test_plain_http_only_for_loopback() -> None:
    """http is fine for 127.0.0.1, localhost and ::1, refused elsewhere unless opted in."""
    for ok in ("http://127.0.0.1:8000", "http://localhost:1", "http://[::1]:8000"):
        resolve_base_url(ok, None)
    with pytest.raises(ConfigurationError, match="clear text"):
        resolve_base_url("http://api.example.test", None)
    assert resolve_base_url("http://api.example.test", None, allow_insecure_http=True).host


def test_bad_model_name() -> None:
    """A model name that could escape the queue path is refused."""
    with pytest.raises(ConfigurationError, match="model"):
        AsyncClient(KEY, model="../admin")


@pytest.mark.parametrize(
    "make",
    [lambda: RetryPolicy(attempts=0), lambda: PollPolicy(jitter=2), lambda: PollPolicy(initial=-1)],
)
def test_policies_validate(make: object) -> None:
    """Policy values out of range are refused on construction."""
    with pytest.raises(ConfigurationError):
        make()  # type: ignore[operator]


@pytest.mark.anyio
async def test_use_before_open_and_after_close() -> None:
    """Calls before ``async with`` or after closing raise a clear error."""
    client = AsyncClient(KEY, base_url="http://127.0.0.1:9/model")
    with pytest.raises(ClientClosedError, match="async with"):
        await client.status("abc")
    async with client:
        pass
    with pytest.raises(ClientClosedError, match="closed"):
        await client.status("abc")
    with pytest.raises(ClientClosedError):
        await client.__aenter__()
