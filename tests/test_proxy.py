"""Proxies: the choice rules (a pure function) and real requests through a CONNECT proxy on
loopback, to an https API (a TLS front over the emulator) and to plain-http hosts."""

from __future__ import annotations

import base64
import logging
import os
import sys
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from yarl import URL

from odiqueue import AsyncClient, ConfigurationError, ConnectError, RetryPolicy, instant_waits
from odiqueue._proxy import select_proxy
from odiqueue.testing import Emulator, EmulatorConfig
from tests.proxies import API_HOST, Certificates, RecordingProxy, TlsFront, make_certificates

KEY = "sk-proxy-test-key-0123456789abcdef"
CLI = [sys.executable, "-m", "odiqueue"]
VARIABLES = (
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "REQUEST_METHOD",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the proxy variables it means; none leak in from the machine."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """The test CA and a server certificate, made once for the module."""
    return make_certificates(tmp_path_factory.mktemp("tls"))


# --- the rules -------------------------------------------------------------------------


def shown(target: str, env: dict[str, str], proxy: str | None = None) -> str | None:
    chosen = select_proxy(target, env, proxy)
    return None if chosen is None else str(chosen.url)


@pytest.mark.parametrize(
    ("target", "env", "expected"),
    [
        ("https://api.x/v1", {"HTTPS_PROXY": "http://p:3128"}, "http://p:3128"),
        (
            "https://api.x/v1",
            {"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:2"},
            "http://low:1",
        ),
        ("https://api.x/v1", {"HTTP_PROXY": "http://p:3128"}, None),
        ("http://cdn.x/a.png", {"HTTP_PROXY": "http://p:3128"}, "http://p:3128"),
        ("http://cdn.x/a.png", {"HTTPS_PROXY": "http://p:3128"}, None),
        ("https://api.x", {"ALL_PROXY": "http://all:1"}, "http://all:1"),
        ("https://api.x", {"ALL_PROXY": "http://all:1", "HTTPS_PROXY": "http://s:2"}, "http://s:2"),
        ("https://api.x", {"HTTPS_PROXY": "  "}, None),
        ("https://api.x", {"HTTPS_PROXY": "p.corp:3128"}, "http://p.corp:3128"),
        ("http://cdn.x", {"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"}, None),
        ("http://cdn.x", {"http_proxy": "http://p:1", "REQUEST_METHOD": "GET"}, "http://p:1"),
        ("https://localhost:8443", {"HTTPS_PROXY": "http://p:1"}, None),
        ("https://127.0.0.1:8443", {"HTTPS_PROXY": "http://p:1"}, None),
        ("https://[::1]:8443", {"HTTPS_PROXY": "http://p:1"}, None),
        ("https://127.0.0.2:8443", {"HTTPS_PROXY": "http://p:1"}, "http://p:1"),
    ],
)
def test_proxy_variables(target: str, env: dict[str, str], expected: str | None) -> None:
    """The scheme's variable, then ALL_PROXY; lower case first; loopback names go direct."""
    assert shown(target, env) == expected


@pytest.mark.parametrize(
    ("target", "no_proxy", "bypassed"),
    [
        ("https://api.x", "*", True),
        ("https://api.x", "api.x", True),
        ("https://API.X.", "api.x", True),
        ("https://eu.api.x", "api.x", True),
        ("https://eu.api.x", ".api.x", True),
        ("https://eu.api.x", "*.api.x", True),
        ("https://api.x", ".api.x", True),
        ("https://notapi.x", "api.x", False),
        ("https://api.x.evil", "api.x", False),
        ("https://api.x", "other.y, api.x", True),
        ("https://api.x", "other.y api.x", True),
        ("https://api.x:8443", "api.x:8443", True),
        ("https://api.x:8443", "api.x:443", False),
        ("https://api.x", "api.x:443", True),
        ("https://10.1.2.3", "10.0.0.0/8", True),
        ("https://11.1.2.3", "10.0.0.0/8", False),
        ("https://10.1.2.3", "10.1.2.3", True),
        ("https://10.1.2.3:9", "10.1.2.3:9", True),
        ("https://10.1.2.3:9", "10.1.2.3:10", False),
        ("https://[2001:db8::5]", "2001:db8::/32", True),
        ("https://[2001:db8::5]:8443", "[2001:db8::5]:8443", True),
        ("https://[2001:db8::5]", "10.0.0.0/8", False),
        ("https://api.x", "", False),
        ("https://api.x", ",,", False),
    ],
)
def test_no_proxy(target: str, no_proxy: str, bypassed: bool) -> None:
    """NO_PROXY: `*`, domains and their subdomains, ports, IPs and CIDR networks."""
    for name in ("NO_PROXY", "no_proxy"):
        env = {"HTTPS_PROXY": "http://p:1", name: no_proxy}
        assert (shown(target, env) is None) is bypassed


def test_explicit_proxy() -> None:
    """An explicit proxy serves every scheme, over the variables; NO_PROXY still applies."""
    env = {"HTTPS_PROXY": "http://env:1", "NO_PROXY": "direct.x"}
    assert shown("https://api.x", env, "http://mine:2") == "http://mine:2"
    assert shown("http://cdn.x", env, "http://mine:2") == "http://mine:2"
    assert shown("https://direct.x", env, "http://mine:2") is None


def test_proxy_credentials_move_to_a_header_and_stay_masked() -> None:
    """user:password in a proxy URL becomes Proxy-Authorization; shown only as user:***."""
    chosen = select_proxy("https://api.x", {"HTTPS_PROXY": "http://bob:s%40cret@p:3128/"})
    assert chosen is not None
    assert chosen.url == URL("http://p:3128")
    assert chosen.authorization == "Basic " + base64.b64encode(b"bob:s@cret").decode()
    for text in (str(chosen), repr(chosen)):
        assert "cret" not in text
        assert "bob:***@p:3128" in text


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("socks5://bob:hunter22@p:1080", "only http:// and https://"),
        ("http://bob:hunter22@p:notaport", "is not a proxy URL"),
        ("https://", "names no proxy host"),
    ],
)
def test_bad_proxy_url_is_named_and_masked(
    monkeypatch: pytest.MonkeyPatch, value: str, reason: str
) -> None:
    """A proxy variable that is not a usable URL is a ConfigurationError naming it, masked."""
    monkeypatch.setenv("HTTPS_PROXY", value)
    with pytest.raises(ConfigurationError) as caught:
        AsyncClient(KEY)
    assert "HTTPS_PROXY=" in str(caught.value)
    assert reason in str(caught.value)
    assert "hunter22" not in str(caught.value)
    # trust_env=False ignores the variable altogether.
    AsyncClient(KEY, trust_env=False)


# --- through a real proxy --------------------------------------------------------------


@asynccontextmanager
async def https_api(
    certificates: Certificates, **config: Any
) -> AsyncIterator[tuple[Emulator, TlsFront, RecordingProxy]]:
    """The emulator behind https on 127.0.0.2, and a proxy that routes API_HOST:443 there."""
    async with Emulator(EmulatorConfig(api_key=KEY, **config)) as emu:
        async with TlsFront(certificates, emu.base_url) as front:
            routes = {f"{API_HOST}:443": (front.host, front.port)}
            async with RecordingProxy(routes) as proxy:
                yield emu, front, proxy


def https_url(front: TlsFront | None, emu: Emulator) -> str:
    """The API's base URL: by name (reached only through the proxy), or the front's IP."""
    prefix = URL(emu.base_url).path
    if front is None:
        return f"https://{API_HOST}{prefix}"
    return f"https://{front.host}:{front.port}{prefix}"


async def generate_and_save(client: AsyncClient, folder: Path) -> None:
    with instant_waits():
        result = await client.generate("a red apple")
        await client.download(result.images[0], folder / "apple.png")
    assert (folder / "apple.png").stat().st_size > 0


def no_key_in(seen: bytes | bytearray) -> bool:
    raw = bytes(seen)
    return KEY.encode() not in raw and b"authorization: bearer" not in raw.lower()


@pytest.mark.anyio
async def test_https_api_through_connect_proxy(
    monkeypatch: pytest.MonkeyPatch, certificates: Certificates, tmp_path: Path
) -> None:
    """An https API is reached inside HTTPS_PROXY's CONNECT tunnel; the proxy never sees the key."""
    async with https_api(certificates) as (emu, _, proxy):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        base = https_url(None, emu)
        async with AsyncClient(
            KEY, base_url=base, ssl_context=certificates.client_context()
        ) as client:
            await generate_and_save(client, tmp_path)
        assert proxy.connects
        assert set(proxy.connects) == {f"{API_HOST}:443"}
        assert emu.stats.requests["submit"] == 1  # the emulator checks the key: it arrived
        assert no_key_in(proxy.seen)
        assert all(head.startswith(b"CONNECT ") for head in proxy.heads)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("no_proxy", "proxied"),
    [
        ("127.0.0.2", False),
        ("127.0.0.0/8", False),
        ("{port}", False),
        ("*", False),
        ("127.0.0.3", True),
        ("127.0.0.2:1", True),
        ("", True),
    ],
)
async def test_no_proxy_bypasses_the_proxy(
    monkeypatch: pytest.MonkeyPatch,
    certificates: Certificates,
    tmp_path: Path,
    no_proxy: str,
    proxied: bool,
) -> None:
    """A host in NO_PROXY is reached directly; any other goes through the proxy."""
    async with https_api(certificates) as (emu, front, proxy):
        monkeypatch.setenv("https_proxy", proxy.url)
        port_rule = f"{front.host}:{front.port}"
        monkeypatch.setenv("no_proxy", no_proxy.format(port=port_rule))
        base = https_url(front, emu)
        async with AsyncClient(
            KEY, base_url=base, ssl_context=certificates.client_context()
        ) as client:
            await generate_and_save(client, tmp_path)
        assert bool(proxy.connects) is proxied
        assert no_key_in(proxy.seen)


@pytest.mark.anyio
async def test_trust_env_false_ignores_proxy_variables(
    monkeypatch: pytest.MonkeyPatch, certificates: Certificates, tmp_path: Path
) -> None:
    """trust_env=False connects directly although HTTPS_PROXY and ALL_PROXY are set."""
    async with https_api(certificates) as (emu, front, proxy):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("ALL_PROXY", proxy.url)
        base = https_url(front, emu)
        client = AsyncClient(
            KEY, base_url=base, ssl_context=certificates.client_context(), trust_env=False
        )
        async with client:
            await generate_and_save(client, tmp_path)
        assert proxy.connects == []
        assert proxy.heads == []


@pytest.mark.anyio
async def test_explicit_proxy_with_credentials(
    certificates: Certificates, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """proxy="http://user:pass@..." authenticates the CONNECT; the password is never shown."""
    caplog.set_level(logging.DEBUG, logger="odiqueue")
    auth = "Basic " + base64.b64encode(b"bob:hunter22").decode()
    async with https_api(certificates) as (emu, _, proxy):
        proxy.auth = auth
        with_password = URL(proxy.url).with_user("bob").with_password("hunter22")
        client = AsyncClient(
            KEY,
            base_url=https_url(None, emu),
            ssl_context=certificates.client_context(),
            proxy=str(with_password),
            trust_env=False,
        )
        async with client:
            await generate_and_save(client, tmp_path)
            assert "hunter22" not in repr(client)
            assert "proxy='http://bob:***@127.0.0.1:" in repr(client)
        assert set(proxy.connects) == {f"{API_HOST}:443"}
        assert no_key_in(proxy.seen)
    assert "go through the proxy http://bob:***@127.0.0.1:" in caplog.text
    assert "hunter22" not in caplog.text


@pytest.mark.anyio
async def test_proxy_refusal_is_a_connect_error_without_the_password(
    monkeypatch: pytest.MonkeyPatch, certificates: Certificates
) -> None:
    """A 407 from the proxy is a ConnectError at once (the API never reached); no password shown."""
    async with https_api(certificates) as (emu, _, proxy):
        proxy.auth = "Basic never-matches"
        with_password = URL(proxy.url).with_user("bob").with_password("hunter22")
        monkeypatch.setenv("HTTPS_PROXY", str(with_password))
        client = AsyncClient(
            KEY, base_url=https_url(None, emu), ssl_context=certificates.client_context()
        )
        async with client:
            with instant_waits(), pytest.raises(ConnectError) as caught:
                await client.submit("a red apple")
        printed = "".join(traceback.format_exception(caught.value))
        assert "407" in str(caught.value)
        assert len(proxy.heads) == 1  # not retried: only other credentials would help
        assert "hunter22" not in printed
        assert emu.stats.requests.get("submit", 0) == 0


@pytest.mark.anyio
async def test_plain_http_api_is_never_sent_through_a_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plain-http API that the proxy would serve is refused before anything is sent."""
    async with Emulator(EmulatorConfig(host="127.0.0.2")) as emu, RecordingProxy() as proxy:
        for name in ("HTTP_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(name, str(URL(proxy.url).with_user("bob").with_password("pw99")))
            with pytest.raises(ConfigurationError) as caught:
                AsyncClient(KEY, base_url=emu.base_url)
            assert name in str(caught.value)
            assert "pw99" not in str(caught.value)
            with pytest.raises(ConfigurationError):
                AsyncClient(KEY, base_url=f"http://{API_HOST}/model", allow_insecure_http=True)
            monkeypatch.delenv(name)
        assert proxy.heads == []
        assert sum(emu.stats.requests.values()) == 0


@pytest.mark.anyio
async def test_plain_http_images_go_through_the_proxy_without_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An http image host goes through HTTP_PROXY with no key; the API (in NO_PROXY) directly."""
    async with Emulator(EmulatorConfig(host="127.0.0.2", api_key=KEY)) as emu:
        async with RecordingProxy() as proxy:
            api = URL(emu.base_url)
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            monkeypatch.setenv("NO_PROXY", f"{api.host}:{api.port}")
            async with AsyncClient(KEY, base_url=emu.base_url) as client:
                await generate_and_save(client, tmp_path)
            cdn = URL(emu.cdn_url)
            assert proxy.forwarded
            assert all(URL(target).port == cdn.port for target in proxy.forwarded)
            assert no_key_in(proxy.seen)
            assert emu.stats.requests["submit"] == 1


@pytest.mark.anyio
async def test_key_for_an_allowed_http_host_is_never_sent_through_a_proxy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A trusted plain-http host that the proxy would serve is refused, not sent the key."""
    async with Emulator(EmulatorConfig(host="127.0.0.2", api_key=KEY)) as emu:
        async with RecordingProxy() as proxy:
            api, cdn = URL(emu.base_url), URL(emu.cdn_url)
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            monkeypatch.setenv("NO_PROXY", f"{api.host}:{api.port}")
            client = AsyncClient(
                KEY, base_url=emu.base_url, allowed_hosts=[f"{cdn.host}:{cdn.port}"]
            )
            async with client:
                with instant_waits():
                    result = await client.generate("a red apple")
                with pytest.raises(ConfigurationError, match="NO_PROXY"):
                    await client.download(result.images[0], tmp_path / "apple.png")
            assert proxy.heads == []
            assert not (tmp_path / "apple.png").exists()


@pytest.mark.anyio
async def test_loopback_emulator_ignores_proxy_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The emulator on 127.0.0.1 is reached directly whatever the proxy variables say."""
    async with Emulator() as emu, RecordingProxy() as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        async with AsyncClient(KEY, base_url=emu.base_url) as client:
            await generate_and_save(client, tmp_path)
        assert proxy.heads == []


@pytest.fixture
def unused_port() -> int:
    """A loopback port with nothing listening (bound, then closed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.anyio
async def test_unreachable_proxy_is_a_connect_error(
    monkeypatch: pytest.MonkeyPatch, unused_port: int
) -> None:
    """A proxy that does not answer is a ConnectError naming it (so a submit is not uncertain)."""
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{unused_port}")
    client = AsyncClient(KEY, base_url=f"https://{API_HOST}/model", retry=RetryPolicy(attempts=1))
    async with client:
        with pytest.raises(ConnectError, match="proxy"):
            await client.submit("a red apple")


@pytest.mark.anyio
@pytest.mark.parametrize("no_proxy_flag", [False, True])
async def test_cli_honours_proxy_variables_unless_no_proxy(
    certificates: Certificates, no_proxy_flag: bool
) -> None:
    """The command line goes through HTTPS_PROXY, and directly with --no-proxy."""
    async with https_api(certificates) as (emu, front, proxy):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ODIQUEUE_")}
        environment.update(
            ODIQUEUE_API_KEY=KEY, HTTPS_PROXY=proxy.url, SSL_CERT_FILE=str(certificates.ca_file)
        )
        command = [*CLI, "submit", "a red apple", "--base-url", https_url(front, emu)]
        command += ["--output", "id"] + (["--no-proxy"] if no_proxy_flag else [])
        with anyio.fail_after(60):
            done = await anyio.run_process(command, env=environment, check=False)
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.decode().strip() in emu.stats.jobs
        assert bool(proxy.connects) is not no_proxy_flag
        assert no_key_in(proxy.seen)
