"""Connection-level bounds over real sockets (docs/security.md): sockets in
the TLS handshake count toward the connection cap from their accept and
cannot push established clients out; the open-connection count never
leaks, however a handshake ends; a closing connection whose client does
not read is reset rather than kept; ``--create-networks`` matches the
IPv4 clients of a server listening on ``::``."""

from __future__ import annotations

import re
import socket
import ssl
import struct
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest
import trustme

from tests.e2e.harness import (
    BOURSE,
    ServerProcess,
    closed_now,
    exchange,
    frame_line,
    read_reply,
    running_command,
    running_server,
)

EMPTY_CREATE = b"<create></create>"
#: Seconds a closing connection's client may take nothing (``--closing-stall``).
CLOSING_STALL = 1.0
METRICS_AT = re.compile(r"metrics on http://[^ ]+:(\d+)/metrics")
OPEN_CONNECTIONS = re.compile(rb"^bourse_connections (\S+)$", re.MULTILINE)
#: ``tcp_info.tcpi_state`` once a reset has arrived.
TCP_CLOSE = 7


# -- TLS handshakes ------------------------------------------------------------------


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_arguments(authority: trustme.CA, tmp_path: Path) -> list[str]:
    certificate = authority.issue_cert("127.0.0.1")
    cert, key = tmp_path / "server.pem", tmp_path / "server-key.pem"
    certificate.cert_chain_pems[0].write_to_path(str(cert))
    certificate.private_key_pem.write_to_path(str(key))
    return ["--tls-cert", str(cert), "--tls-key", str(key), "--metrics-port", "0"]


def tls_client(server: ServerProcess, authority: trustme.CA) -> ssl.SSLSocket:
    """A client through the handshake and served once."""
    context = ssl.create_default_context()
    authority.configure_trust(context)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    client = context.wrap_socket(raw, server_hostname="127.0.0.1")
    assert served(client)
    return client


def served(client: socket.socket) -> bool:
    """True if ``client`` still gets an answer."""
    try:
        client.sendall(frame_line(EMPTY_CREATE))
        return b"<results>" in read_reply(client)
    except OSError:  # reset, or a TLS error on a connection that was cut
        return False


def open_connections(server: ServerProcess) -> float:
    """The server's ``bourse_connections`` gauge."""
    port = next(found.group(1) for line in server.log if (found := METRICS_AT.search(line)))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        gauge = OPEN_CONNECTIONS.search(response.read())
    assert gauge is not None
    return float(gauge.group(1))


def dropped(sockets: list[socket.socket], at_least: int, within: float = 10) -> int:
    """How many of ``sockets`` the server has closed, waiting up to
    ``within`` seconds for ``at_least`` of them."""
    deadline = time.monotonic() + within
    while (count := sum(closed_now(sock) for sock in sockets)) < at_least:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return count


def settles_at(server: ServerProcess, expected: int, within: float = 5) -> bool:
    """True once the gauge reads ``expected`` (gateways report every second)."""
    deadline = time.monotonic() + within
    while open_connections(server) != expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_sockets_that_never_handshake_are_bounded_and_evict_no_established_client(
    workers: int, database_url: str, authority: trustme.CA, tls_arguments: list[str]
) -> None:
    cap, flood = 20, 60
    may_evict = max(workers, 1)  # the first socket at each gateway's cap, if all are established
    arguments = ["--max-connections", str(cap), "--tls-handshake-timeout", "60"]
    with (
        running_server(database_url, *tls_arguments, *arguments) as server,
        ExitStack() as stack,
    ):
        clients = [stack.enter_context(tls_client(server, authority)) for _ in range(cap)]
        established = [client for client in clients if served(client)]  # a gateway's share
        silent = [stack.enter_context(server.connect()) for _ in range(flood)]
        assert dropped(silent, at_least=flood - cap) >= flood - cap, "handshakes unbounded"
        still_served = [client for client in established if served(client)]
        assert len(established) - len(still_served) <= may_evict, "handshakes evict clients"
        for sock in silent:
            sock.close()
        assert settles_at(server, len(still_served))
        assert server.stop() == 0


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_the_connection_count_never_leaks_however_a_handshake_ends(
    database_url: str, authority: trustme.CA, tls_arguments: list[str]
) -> None:
    arguments = ["--tls-handshake-timeout", "1"]
    with (
        running_server(database_url, *tls_arguments, *arguments) as server,
        ExitStack() as stack,
    ):
        clients = [stack.enter_context(tls_client(server, authority)) for _ in range(2)]
        silent = [stack.enter_context(server.connect()) for _ in range(5)]  # time out
        for _ in range(5):  # fail the handshake
            stack.enter_context(server.connect()).sendall(frame_line(EMPTY_CREATE))
        for _ in range(5):  # leave during it
            server.connect().close()
        for _ in range(5):  # reset during it
            reset(server.connect())
        assert dropped(silent, at_least=len(silent)) == len(silent)
        assert settles_at(server, len(clients))
        assert all(served(client) for client in clients)
        assert server.stop() == 0


# -- clients that do not read ------------------------------------------------------------

FILLS = 10_000


def sell_with_many_fills(server: ServerProcess) -> bytes:
    """Order 1 of account 1, filled ``FILLS`` times: the request that queries
    it, one line, gets a reply of half a megabyte."""
    created = exchange(
        server,
        b'<create><account id="1" balance="0"/><account id="2" balance="100000"/>'
        b'<symbol sym="FILL"><account id="1">10000</account></symbol></create>',
    )
    assert created.count(b"<created") == 3, created
    sold = exchange(
        server, b'<transactions id="1"><order sym="FILL" amount="-10000" limit="1"/></transactions>'
    )
    assert b'id="1"' in sold, sold
    buys = b'<order sym="FILL" amount="1" limit="1"/>' * 1000
    for _ in range(FILLS // 1000):
        assert b"<error" not in exchange(
            server, b'<transactions id="2">' + buys + b"</transactions>"
        )
    return frame_line(b'<transactions id="1"><query id="1"/></transactions>')


def tcp_state(sock: socket.socket) -> int:
    state: int = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    return state


@pytest.mark.parametrize("ending", ["idle timeout", "fatal error"])
def test_a_closing_connection_whose_client_does_not_read_is_reset(
    database_url: str, ending: str
) -> None:
    """About 7 MB of replies, more than the kernel buffers take and less
    than ``--max-unsent-bytes``, are still unsent when the connection
    closes; the client never reads them."""
    idle = ["--idle-timeout", "1"] if ending == "idle timeout" else []
    stall = ["--closing-stall", str(CLOSING_STALL)]
    with running_server(database_url, *idle, *stall) as server, socket.socket() as reader_less:
        query = sell_with_many_fills(server)
        reader_less.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader_less.connect(("127.0.0.1", server.port))
        garbage = b"1234567890\n" if ending == "fatal error" else b""  # no framing: fatal
        reader_less.sendall(query * 14 + garbage)  # all read at once: the close follows
        deadline = time.monotonic() + 1 + CLOSING_STALL * 2 + 10
        while tcp_state(reader_less) != TCP_CLOSE:
            assert time.monotonic() < deadline, "a client that does not read is kept"
            time.sleep(0.2)
        assert b"<results>" in exchange(server, EMPTY_CREATE)
        assert server.stop() == 0


# -- IPv4 clients of a server on :: ------------------------------------------------------

CREATE = b'<create><account id="1" balance="100"/></create>'
FORBIDDEN = b"<error>Create is not allowed from this connection</error>"


def create_from(address: str, port: int) -> bytes:
    with socket.create_connection((address, port), timeout=10) as sock:
        sock.sendall(frame_line(CREATE))
        return read_reply(sock)


def test_create_networks_match_the_ipv4_clients_of_a_server_on_ipv6(
    workers: int, database_url: str
) -> None:
    if not workers:
        pytest.skip("in one process the server listens on :: for IPv6 only (asyncio's choice)")
    if not socket.has_dualstack_ipv6():
        pytest.skip("no dual-stack IPv6 here")
    command = [
        str(BOURSE), "serve", "--host", "::", "--port", "0", "--accept", "shared",
        "--database-url", database_url, "--create-networks", "127.0.0.0/8",
    ]  # fmt: skip
    with running_command(command) as server:
        assert FORBIDDEN in create_from("::1", server.port)  # an IPv6 client outside it
        assert b'<created id="1"/>' in create_from("127.0.0.1", server.port)  # ::ffff:127.0.0.1
        assert server.stop() == 0
