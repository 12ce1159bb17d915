"""TLS is verified on every connection, directly and through an HTTPS proxy (CONNECT tunnel),
on both send paths: botocore's client and the wire.

A real TLS server on 127.0.0.1 presents a self-signed certificate that the client trusts (it is
the CA bundle) but that names another host. Only the host name check can refuse it; the same
server with a certificate for the right name proves that nothing else does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import SSLError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orgscan.aws.clients import ClientFactory
from orgscan.aws.ratelimit import CallCounter, RateLimiter
from orgscan.aws.wire import WIRE_OPERATIONS
from orgscan.config import parse_config

ANSWERS = {
    "GetCallerIdentity": (
        '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        "<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/tls</Arn>"
        "<UserId>AIDATLSTEST</UserId><Account>123456789012</Account></GetCallerIdentityResult>"
        "<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>"
        "</GetCallerIdentityResponse>"
    ),
    "ListUsers": (
        '<ListUsersResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        "<ListUsersResult><Users/><IsTruncated>false</IsTruncated></ListUsersResult>"
        "<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></ListUsersResponse>"
    ),
}


def certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for the DNS name `name` (and no IP address)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One AWS query request, answered from ANSWERS; the connection then closes."""
    with contextlib.suppress(ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        body = (await reader.readexactly(length)).decode()
        action = next(v for k, _, v in (p.partition("=") for p in body.split("&")) if k == "Action")
        answer = ANSWERS[action].encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n"
            + f"Content-Length: {len(answer)}\r\n\r\n".encode()
            + answer
        )
        await writer.drain()
    writer.close()


@dataclass
class Proxy:
    """A minimal HTTP proxy: CONNECT host:port, then bytes both ways."""

    tunnels: list[str] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        assert method == "CONNECT", method
        self.tunnels.append(target)
        host, port = target.rsplit(":", 1)
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


@contextlib.asynccontextmanager
async def tls_server(cert: Path, key: Path) -> AsyncIterator[int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = await asyncio.start_server(_answer, "127.0.0.1", 0, ssl=context)
    async with server:
        yield server.sockets[0].getsockname()[1]


@contextlib.asynccontextmanager
async def proxy_server(proxy: Proxy) -> AsyncIterator[int]:
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def _call(path: str) -> object:
    """One call on `path`: 'botocore' (GetCallerIdentity through aiobotocore) or 'wire'
    (ListUsers through orgscan's own sender), with a shared client as a scan has."""
    settings = parse_config({"scan": {"max_attempts": 1, "call_timeout": 5}})
    factory = ClientFactory(settings.scan)
    service = "sts" if path == "botocore" else "iam"
    async with factory, factory.client(service, RateLimiter(100), CallCounter()) as client:
        if path == "botocore":
            assert "GetCallerIdentity" not in WIRE_OPERATIONS["sts"]
            return await client.get_caller_identity()
        assert factory._wires["iam"] is not None, "the wire must carry ListUsers"
        return await client.list_users(MaxItems=1)


@pytest.mark.parametrize("via_proxy", [False, True], ids=["direct", "via-proxy"])
@pytest.mark.parametrize("path", ["botocore", "wire"])
async def test_a_certificate_for_another_host_is_refused(
    moto_server, tmp_path, monkeypatch, path, via_proxy
):
    wrong_cert, wrong_key = certificate(tmp_path, "wrong.example")
    right_cert, right_key = certificate(tmp_path, "localhost")
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    proxy = Proxy()
    async with proxy_server(proxy) as proxy_port:
        if via_proxy:
            monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy_port}")

        # The certificate is trusted, but names wrong.example: the host name check refuses it.
        monkeypatch.setenv("AWS_CA_BUNDLE", str(wrong_cert))
        async with tls_server(wrong_cert, wrong_key) as port:
            monkeypatch.setenv("AWS_ENDPOINT_URL", f"https://localhost:{port}")
            with pytest.raises(SSLError):
                await _call(path)

        # The same set-up with a certificate for localhost works: nothing else refused it.
        monkeypatch.setenv("AWS_CA_BUNDLE", str(right_cert))
        async with tls_server(right_cert, right_key) as port:
            monkeypatch.setenv("AWS_ENDPOINT_URL", f"https://localhost:{port}")
            answer = await _call(path)
            assert ("Arn" if path == "botocore" else "Users") in answer

    expected = 2 if via_proxy else 0
    assert len(proxy.tunnels) == expected, proxy.tunnels
    assert all(t.startswith("localhost:") for t in proxy.tunnels)
