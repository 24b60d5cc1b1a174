"""What one request may cost, over real sockets: replies and batches.

A ``<query>`` answers with one ``<executed>`` per fill of its order, so a
few bytes naming a long-lived order many times would make the server build
an unbounded reply; a request past ``--max-reply-fills`` gets an error in
the place of each query or cancel past it. And however large the requests
of a burst, they are committed in batches of bounded size, so a healthy
commit is never mistaken for a lost database.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import psutil  # type: ignore[import-untyped]
import psycopg

from tests.e2e.harness import (
    ServerProcess,
    exchange,
    frame_line,
    read_replies,
    read_reply,
    running_server,
    server_memory,
)

FILLS = 2_500
BUDGET = 10_000
REPLY_TOO_LARGE = b">Reply too large: "
ERROR_ELEMENT = re.compile(rb'<error id="1">Reply too large: [^<]*</error>')

#: What the amplifying clients may add to the resident memory of the
#: server's processes (engine and gateways), stated in docs/security.md.
MEMORY_BOUND = 200 * 1024 * 1024


def build_long_history(server: ServerProcess, fills: int = FILLS) -> None:
    """Order 1, account 1's buy of ``fills + 1`` shares, filled ``fills``
    times (one share per sell of account 2); one share stays open."""
    created = exchange(
        server,
        b'<create><account id="1" balance="100000000"/><account id="2" balance="0"/>'
        b'<symbol sym="S"><account id="2">1000000</account></symbol></create>',
    )
    assert created.count(b"<created") == 3, created
    buy = f'<order sym="S" amount="{fills + 1}" limit="10"/>'
    opened = exchange(server, f'<transactions id="1">{buy}</transactions>'.encode())
    assert b'id="1"/>' in opened, opened
    sells = '<order sym="S" amount="-1" limit="10"/>' * fills
    sold = exchange(server, f'<transactions id="2">{sells}</transactions>'.encode())
    assert sold.count(b"<opened") == fills, sold[:300]


def queries(count: int, order_id: int = 1) -> bytes:
    children = f'<query id="{order_id}"/>' * count
    return f'<transactions id="1">{children}</transactions>'.encode()


def test_queries_past_the_budget_get_errors_in_their_place(database_url: str) -> None:
    with running_server(database_url) as server:
        build_long_history(server)
        reply = exchange(server, queries(10))
        answered = BUDGET // FILLS
        assert reply.count(b"<status ") == answered
        assert reply.count(b"<executed ") == answered * FILLS
        assert len(ERROR_ELEMENT.findall(reply)) == 10 - answered
        assert reply.index(b"</status>") < reply.index(REPLY_TOO_LARGE)
        assert server.stop() == 0


def test_a_cancel_past_the_budget_changes_nothing_and_works_alone(database_url: str) -> None:
    with running_server(database_url) as server:
        build_long_history(server)
        over = exchange(
            server,
            b'<transactions id="1">'
            + b'<query id="1"/>' * (BUDGET // FILLS)
            + b'<cancel id="1"/></transactions>',
        )
        assert len(ERROR_ELEMENT.findall(over)) == 1
        still_open = exchange(server, queries(1))
        assert b'<open shares="1"/>' in still_open
        canceled = exchange(server, b'<transactions id="1"><cancel id="1"/></transactions>')
        assert b'<canceled shares="1"' in canceled
        assert canceled.count(b"<executed ") == FILLS
        assert server.stop() == 0


def test_one_order_longer_than_the_budget_is_still_answered_in_full(database_url: str) -> None:
    with running_server(database_url, "--max-reply-fills", "100") as server:
        build_long_history(server, fills=300)
        reply = exchange(server, queries(2))
        assert reply.count(b"<executed ") == 300
        assert len(ERROR_ELEMENT.findall(reply)) == 1
        assert server.stop() == 0


@contextmanager
def peak_memory(server: ServerProcess) -> Iterator[list[int]]:
    """Samples the server's memory every 20 ms; the list holds the peak."""
    peak = [server_memory(server)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            try:
                peak[0] = max(peak[0], server_memory(server))
            except psutil.Error:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def amplify(server: ServerProcess, connections: int, pipelined: int, per_request: int) -> None:
    """Clients that pipeline requests of many queries of the long order and
    never read; each ends when the server drops it or all is sent."""
    request = frame_line(queries(per_request))
    with ExitStack() as stack:
        socks = [stack.enter_context(server.connect()) for _ in range(connections)]
        for sock in socks:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(10)

        def flood(sock: socket.socket) -> None:
            try:
                for _ in range(pipelined):
                    sock.sendall(request)
            except OSError:
                return  # dropped by the server for not reading

        floods = [threading.Thread(target=flood, args=(sock,)) for sock in socks]
        for thread in floods:
            thread.start()
        for thread in floods:
            thread.join()
        time.sleep(2)  # let the server work through what it read


def test_amplifying_requests_keep_memory_bounded_and_others_served(database_url: str) -> None:
    with running_server(database_url) as server:
        build_long_history(server)
        before = server_memory(server)
        with peak_memory(server) as peak:
            attack = threading.Thread(target=amplify, args=(server, 4, 128, 200))
            attack.start()
            with server.connect(timeout=60) as normal:
                for n in range(5):
                    normal.sendall(frame_line(queries(1)))
                    assert b"<status " in read_reply(normal), n
            attack.join()
        grown = peak[0] - before
        print(f"server memory: {before >> 20} MiB before, peak {peak[0] >> 20} MiB")
        assert grown < MEMORY_BOUND, f"grew by {grown >> 20} MiB"
        assert server.stop() == 0


def resting_buys(account_id: str, count: int) -> bytes:
    orders = '<order sym="B" amount="1" limit="1"/>' * count
    return f'<transactions id="{account_id}">{orders}</transactions>'.encode()


def test_a_burst_of_large_requests_is_served_not_looped(database_url: str) -> None:
    clients, orders = 6, 20_000
    options = ("--commit-timeout", "1", "--max-batch-rows", "10000")
    with running_server(database_url, *options) as server:
        accounts = "".join(f'<account id="{n}" balance="1000000"/>' for n in range(clients))
        symbol = '<symbol sym="B"><account id="0">1</account></symbol>'
        created = exchange(server, f"<create>{accounts}{symbol}</create>".encode())
        assert created.count(b"<created") == clients + 1
        with ExitStack() as stack:
            socks = [stack.enter_context(server.connect(timeout=120)) for _ in range(clients)]
            for n, sock in enumerate(socks):
                sock.sendall(frame_line(resting_buys(str(n), orders)))
            replies = [read_replies(sock, 1)[0] for sock in socks]
        assert all(reply.count(b"<opened ") == orders for reply in replies)
        assert not any("failed to commit" in line for line in server.log), "".join(server.log)
        assert server.stop() == 0
    with psycopg.connect(database_url) as connection:
        stored = connection.execute("SELECT count(*) FROM orders").fetchone()
    assert stored == (clients * orders,)
