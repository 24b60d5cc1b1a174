"""Resource limits over real sockets (docs/security.md): slow-drip clients,
connection floods, clients that never read, request rates, open orders."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import ExitStack

from tests.e2e.harness import (
    ServerProcess,
    closed_now,
    exchange,
    frame_line,
    is_closed,
    read_replies,
    read_reply,
    running_server,
    server_memory,
)

EMPTY_CREATE = b"<create></create>"
RATE_LIMITED = b"<error>Rate limit exceeded</error>"


def answered(server: ServerProcess, xml: bytes = EMPTY_CREATE) -> float:
    """Seconds one request took on a new connection; fails if unanswered."""
    started = time.monotonic()
    reply = exchange(server, xml)
    assert reply.startswith(b"<?xml"), reply
    assert b"<error>" not in reply, reply
    return time.monotonic() - started


def drip(sockets: list[socket.socket], stop: threading.Event) -> None:
    """One more byte of a request on every socket, every 0.2 s, until told
    to stop (closed sockets are skipped)."""
    while not stop.wait(0.2):
        for sock in sockets:
            try:
                sock.send(b" ")
            except OSError:
                continue


def test_slow_drip_clients_are_closed_at_the_deadline_while_others_are_served(
    database_url: str,
) -> None:
    with running_server(database_url, "--body-timeout", "2") as server, ExitStack() as stack:
        slow = [stack.enter_context(server.connect()) for _ in range(200)]
        for sock in slow:
            sock.sendall(frame_line(EMPTY_CREATE)[:6])  # a length and a start of XML
        stop = threading.Event()
        dripper = threading.Thread(target=drip, args=(slow, stop), daemon=True)
        dripper.start()
        try:
            latencies = [answered(server) for _ in range(30)]
            assert max(latencies) < 2, latencies  # never waited on the slow clients
            time.sleep(2.5)
        finally:
            stop.set()
            dripper.join()
        still_open = [sock for sock in slow if not is_closed(sock, within=3)]
        assert still_open == []
        assert answered(server) < 2
        assert server.stop() == 0


def test_an_idle_flood_at_the_connection_cap_does_not_lock_out_a_new_client(
    workers: int, database_url: str
) -> None:
    cap = 20
    with (
        running_server(database_url, "--max-connections", str(cap)) as server,
        ExitStack() as stack,
    ):
        flood = []
        for _ in range(cap):
            sock = stack.enter_context(server.connect())
            sock.sendall(frame_line(EMPTY_CREATE))
            read_reply(sock)  # accepted and served: now it idles
            flood.append(sock)
        answered(server)  # the newcomer gets in
        time.sleep(0.5)
        evicted = [sock for sock in flood if closed_now(sock)]
        assert evicted, "no connection was evicted for the newcomer"
        if workers == 0:  # one process: the longest-idle one goes first
            assert flood[0] in evicted
        open_now = [sock for sock in flood if not closed_now(sock)]
        for sock in open_now:  # those left are served as usual
            sock.sendall(frame_line(EMPTY_CREATE))
            assert b"<results>" in read_reply(sock)
        assert server.stop() == 0


def test_a_client_that_never_reads_is_dropped_with_memory_bounded(database_url: str) -> None:
    unsent_cap = 256 * 1024
    queries = "".join(f'<query id="{n}"/>' for n in range(1, 1001))
    request = frame_line(f'<transactions id="404">{queries}</transactions>'.encode())
    limits = ("--max-unsent-bytes", str(unsent_cap), "--max-pipelined", "16")
    with running_server(database_url, *limits) as server:
        before = server_memory(server)
        reader_less = socket.socket()
        reader_less.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader_less.connect(("127.0.0.1", server.port))
        reader_less.settimeout(10)
        sent = 0
        try:
            for _ in range(500):  # about 30 MB of replies if all were kept
                reader_less.sendall(request)
                sent += 1
        except OSError:
            pass  # reset by the server once it dropped us
        deadline = time.monotonic() + 30
        while not any("not reading" in line for line in server.log):
            assert time.monotonic() < deadline, "".join(server.log)
            time.sleep(0.1)
        assert is_closed(reader_less, within=10)  # a reset, after what was in flight
        reader_less.close()
        assert server_memory(server) - before < 100 * 1024 * 1024
        assert answered(server) < 5
        assert server.stop() == 0


def pipelined(sock: socket.socket, requests: list[bytes]) -> list[bytes]:
    sock.sendall(b"".join(frame_line(request) for request in requests))
    return read_replies(sock, len(requests))


def test_the_connection_rate_limit_answers_errors_and_recovers(database_url: str) -> None:
    limits = ("--connection-rate", "5", "--connection-burst", "5")
    with running_server(database_url, *limits) as server, server.connect() as sock:
        replies = pipelined(sock, [EMPTY_CREATE] * 20)
        limited = [reply for reply in replies if RATE_LIMITED in reply]
        assert 5 <= len(replies) - len(limited) <= 7  # the burst, plus what refilled
        assert len(limited) >= 13
        assert answered(server) < 5  # another connection has its own bucket
        time.sleep(1.2)
        (again,) = pipelined(sock, [EMPTY_CREATE])
        assert RATE_LIMITED not in again
        assert server.stop() == 0


def test_the_account_rate_limit_spans_connections_and_recovers(database_url: str) -> None:
    limits = ("--account-rate", "5", "--account-burst", "5")
    query = b'<transactions id="7"><query id="1"/></transactions>'
    other = b'<transactions id="8"><query id="1"/></transactions>'
    with running_server(database_url, *limits) as server:
        exchange(
            server, b'<create><account id="7" balance="1"/><account id="8" balance="1"/></create>'
        )
        with server.connect() as first, server.connect() as second:
            replies = pipelined(first, [query] * 4) + pipelined(second, [query] * 4)
            limited = sum(RATE_LIMITED in reply for reply in replies)
            assert 1 <= limited <= 3
            assert RATE_LIMITED not in exchange(server, other)
            time.sleep(1.2)
            (again,) = pipelined(second, [query])
            assert b"Order does not exist" in again
        assert server.stop() == 0


def test_the_open_order_cap_refuses_orders_beyond_it(database_url: str) -> None:
    order = b'<transactions id="1"><order sym="X" amount="1" limit="1"/></transactions>'
    with running_server(database_url, "--max-open-orders", "2") as server:
        exchange(server, b'<create><account id="1" balance="100"/></create>')
        exchange(server, b'<create><symbol sym="X"><account id="1">1</account></symbol></create>')
        assert b"<opened" in exchange(server, order)
        assert b"<opened" in exchange(server, order)
        refused = exchange(server, order)
        assert b"Too many open orders for this account</error>" in refused
        assert b'<canceled id="1">' in exchange(
            server, b'<transactions id="1"><cancel id="1"/></transactions>'
        )
        assert b"<opened" in exchange(server, order)
        assert server.stop() == 0


def test_a_client_pipelining_past_the_cap_is_served_in_order(database_url: str) -> None:
    accounts = [f'<create><account id="{n}" balance="1"/></create>'.encode() for n in range(300)]
    with (
        running_server(database_url, "--max-pipelined", "8") as server,
        server.connect() as sock,
    ):
        replies = pipelined(sock, accounts)
        assert [reply.count(b"<created") for reply in replies] == [1] * 300
        for number, reply in enumerate(replies):
            assert f'<created id="{number}"/>'.encode() in reply
        assert server.stop() == 0
