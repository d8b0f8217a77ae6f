"""Real network parts for the proxy tests, all on loopback: a CONNECT/forward proxy that
records what it sees, a TLS front that serves the emulator over https, and the test's own
certificate authority (made with ``cryptography``, so no file is shipped).

The proxy connects only to loopback addresses: a name like ``api.odiqueue.test`` is routed
by the test (``routes``) the way a corporate proxy resolves names the client cannot, so a
client can use a remote-looking https URL while every byte stays on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from yarl import URL

#: The remote-looking name of the https API in these tests (``.test`` is reserved).
API_HOST = "api.odiqueue.test"


@attrs.frozen
class Certificates:
    """A CA file the client trusts, and a server certificate and key that CA signed."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only the test CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def server_context(self) -> ssl.SSLContext:
        """A server context presenting the signed certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_certificates(folder: Path) -> Certificates:
    """A CA and a server certificate for ``API_HOST``, localhost, 127.0.0.1 and 127.0.0.2."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "odiqueue test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(API_HOST), x509.DNSName("localhost")]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "127.0.0.2")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, API_HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    files = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    files.ca_file.write_bytes(ca.public_bytes(pem))
    files.cert_file.write_bytes(cert.public_bytes(pem))
    files.key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


class _Server:
    """An asyncio server whose open connections are closed with it."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def _start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, 0, ssl=ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self.handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        # Only ever this machine: the tests never reach out.
        assert ipaddress.ip_address(host).is_loopback, host
        reader, writer = await asyncio.open_connection(host, port)
        self._writers.add(writer)
        return reader, writer


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bytearray | None
) -> None:
    try:
        while data := await reader.read(65536):
            if record is not None:
                record += data
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        # Half-close where the transport can (plain TCP), else close (TLS cannot).
        with contextlib.suppress(ConnectionError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


async def _both_ways(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    record: bytearray,
) -> None:
    try:
        await asyncio.gather(
            _pipe(client[0], upstream[1], record), _pipe(upstream[0], client[1], None)
        )
    finally:
        upstream[1].close()


class RecordingProxy(_Server):
    """An HTTP proxy on 127.0.0.1: CONNECT tunnels and absolute-form forwarding, both piped
    byte for byte. ``seen`` holds every byte clients sent it (cleartext when forwarding,
    the TLS records inside a tunnel); ``heads`` each request head it read itself."""

    def __init__(
        self, routes: Mapping[str, tuple[str, int]] | None = None, *, auth: str | None = None
    ) -> None:
        super().__init__()
        #: "host:port" as the client names it -> the loopback address that serves it.
        self.routes = dict(routes or {})
        #: The Proxy-Authorization value required, if any (else 407).
        self.auth = auth
        self.seen = bytearray()
        self.heads: list[bytes] = []
        self.connects: list[str] = []
        self.forwarded: list[str] = []

    @property
    def url(self) -> str:
        """The proxy's URL, for HTTPS_PROXY and friends."""
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> RecordingProxy:
        await self._start()
        return self

    def _route(self, host: str, port: int) -> tuple[str, int]:
        return self.routes.get(f"{host}:{port}", (host.strip("[]"), port))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.seen += head
        self.heads.append(head)
        request_line, _, rest = head.partition(b"\r\n")
        method, target, version = request_line.decode("latin-1").split(" ")
        headers = {}
        for line in rest.decode("latin-1").split("\r\n"):
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if self.auth is not None and headers.get("proxy-authorization") != self.auth:
            writer.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b"Proxy-Authenticate: Basic\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
            return
        if method == "CONNECT":
            self.connects.append(target)
            host, _, port = target.rpartition(":")
            upstream = await self._connect(*self._route(host, int(port)))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await _both_ways((reader, writer), upstream, self.seen)
            return
        url = URL(target)
        self.forwarded.append(target)
        assert url.host is not None
        assert url.port is not None
        upstream = await self._connect(*self._route(url.host, url.port))
        # The first request in origin form; any later one on this connection goes on in
        # absolute form, which an HTTP/1.1 server accepts too.
        kept = [
            line
            for line in rest.decode("latin-1").split("\r\n")
            if not line.lower().startswith("proxy-authorization:")
        ]
        first = f"{method} {url.raw_path_qs} {version}\r\n" + "\r\n".join(kept)
        upstream[1].write(first.encode("latin-1"))
        await _both_ways((reader, writer), upstream, self.seen)


class TlsFront(_Server):
    """https on 127.0.0.2 in front of a plain-http server: decrypts and pipes."""

    host = "127.0.0.2"

    def __init__(self, certificates: Certificates, backend: str) -> None:
        super().__init__()
        self._certificates = certificates
        parsed = URL(backend)
        assert parsed.host is not None
        assert parsed.port is not None
        self._backend = (parsed.host, parsed.port)

    async def __aenter__(self) -> TlsFront:
        await self._start(self._certificates.server_context())
        return self

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect(*self._backend)
        await _both_ways((reader, writer), upstream, bytearray())
