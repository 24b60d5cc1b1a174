"""Access control and TLS over real sockets (docs/security.md): the admin
listener, client networks for ``<create>``, account tokens, TLS with and
without client certificates, and the handshake timeout."""

from __future__ import annotations

import hashlib
import socket
import ssl
from pathlib import Path

import pytest
import trustme

from tests.e2e.harness import (
    ServerProcess,
    exchange,
    frame_line,
    is_closed,
    read_reply,
    running_server,
)

CREATE = b'<create><account id="1" balance="100"/></create>'
QUERY = b'<transactions id="1"><query id="1"/></transactions>'
FORBIDDEN = b"<error>Create is not allowed from this connection</error>"
UNAUTHORIZED = b"<error>Not authorized for this account</error>"


def on_port(port: int, xml: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(frame_line(xml))
        return read_reply(sock)


# -- who may <create> ------------------------------------------------------------


def test_with_an_admin_listener_create_is_refused_on_the_public_port(database_url: str) -> None:
    with running_server(database_url, "--admin-port", "0") as server:
        assert server.admin_port
        assert FORBIDDEN in exchange(server, CREATE)
        assert b"Account does not exist" in exchange(server, QUERY)  # nothing was made
        assert b'<created id="1"/>' in on_port(server.admin_port, CREATE)
        assert b"Order does not exist" in exchange(server, QUERY)  # trading stays public
        assert server.stop() == 0


@pytest.mark.parametrize(
    ("networks", "allowed"), [("10.0.0.0/8", False), ("10.0.0.0/8,127.0.0.0/8", True)]
)
def test_create_networks_decide_who_may_create_on_the_public_port(
    database_url: str, networks: str, allowed: bool
) -> None:
    with running_server(database_url, "--create-networks", networks) as server:
        reply = exchange(server, CREATE)
        assert (b'<created id="1"/>' in reply) is allowed
        assert (FORBIDDEN in reply) is not allowed
        assert server.stop() == 0


# -- account tokens ------------------------------------------------------------------


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    digest = hashlib.sha256(b"s3cret").hexdigest()
    path.write_text(f"# account token digests\n1 {digest}\n")
    return path


def transactions(token: str | None) -> bytes:
    attribute = "" if token is None else f' token="{token}"'
    return f'<transactions id="1"{attribute}><query id="1"/></transactions>'.encode()


def test_transactions_need_the_account_token(database_url: str, token_file: Path) -> None:
    with running_server(database_url, "--account-tokens", str(token_file)) as server:
        assert b"<created" in exchange(server, CREATE)
        assert UNAUTHORIZED in exchange(server, transactions(None))
        assert UNAUTHORIZED in exchange(server, transactions("guess"))
        assert UNAUTHORIZED in exchange(
            server, b'<transactions id="2" token="s3cret"><query id="1"/></transactions>'
        )
        assert b"Order does not exist" in exchange(server, transactions("s3cret"))
        assert server.stop() == 0


def test_without_tokens_the_protocol_has_no_token_attribute(database_url: str) -> None:
    with running_server(database_url) as server:
        reply = exchange(server, transactions("s3cret"))
        assert b"<error>" in reply
        assert b"token" in reply
        assert server.stop() == 0


# -- TLS ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_files(authority: trustme.CA, tmp_path: Path) -> dict[str, Path]:
    server_cert = authority.issue_cert("127.0.0.1")
    files = {"cert": tmp_path / "server.pem", "key": tmp_path / "server-key.pem"}
    server_cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server_cert.private_key_pem.write_to_path(str(files["key"]))
    files["ca"] = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(files["ca"]))
    return files


def client_context(authority: trustme.CA, *, certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    if certificate:
        authority.issue_cert("trader-1").configure_cert(context)
    return context


def over_tls(server: ServerProcess, context: ssl.SSLContext, xml: bytes) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        sock.sendall(frame_line(xml))
        return read_reply(sock)


def tls_arguments(files: dict[str, Path], *extra: str) -> list[str]:
    return ["--tls-cert", str(files["cert"]), "--tls-key", str(files["key"]), *extra]


def test_tls_serves_clients_that_trust_the_server(
    database_url: str, authority: trustme.CA, tls_files: dict[str, Path]
) -> None:
    with running_server(database_url, *tls_arguments(tls_files)) as server:
        context = client_context(authority, certificate=False)
        assert b'<created id="1"/>' in over_tls(server, context, CREATE)
        with server.connect() as plain:  # plain text is not spoken here
            plain.sendall(frame_line(QUERY))
            assert is_closed(plain, within=15)
        assert server.stop() == 0


def test_tls_with_client_certificates_refuses_clients_without_one(
    database_url: str, authority: trustme.CA, tls_files: dict[str, Path]
) -> None:
    arguments = tls_arguments(tls_files, "--tls-client-ca", str(tls_files["ca"]))
    with running_server(database_url, *arguments) as server:
        without = client_context(authority, certificate=False)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            over_tls(server, without, CREATE)
        with_certificate = client_context(authority, certificate=True)
        assert b'<created id="1"/>' in over_tls(server, with_certificate, CREATE)
        assert server.stop() == 0


def test_a_silent_client_is_dropped_at_the_handshake_timeout(
    database_url: str, tls_files: dict[str, Path]
) -> None:
    arguments = tls_arguments(tls_files, "--tls-handshake-timeout", "1")
    with running_server(database_url, *arguments) as server, server.connect() as silent:
        assert is_closed(silent, within=5)  # the default timeout would be 10 s
        assert server.stop() == 0
