"""Closed orders, end to end: evicted from memory, answered from the tables.

A real server and real PostgreSQL over TCP. Under a stream of trades the
engine's order count (``bourse_orders_in_memory``) falls back to the open
orders once the tables hold the batches that closed the others; queries
and cancels of those closed orders, pipelined on one connection, are
answered exactly as before, by their owners and by another account
(the ownership rule), and so is an id never issued; after a restart,
which reads the open orders only, every answer is the same again.
"""

from __future__ import annotations

import pytest

from tests.e2e.harness import ServerProcess, exchange, frame_line, read_replies, running_server
from tests.e2e.test_observability import eventually, scrape, value

pytestmark = pytest.mark.timeout(300)

SELLERS = ["11", "12", "13"]
BUYER = "20"
OTHER = "30"
ROUNDS = 30


def set_up(server: ServerProcess) -> None:
    accounts = "".join(f'<account id="{a}" balance="100000"/>' for a in [*SELLERS, BUYER, OTHER])
    positions = "".join(f'<account id="{a}">1000</account>' for a in SELLERS)
    created = exchange(
        server, f'<create>{accounts}<symbol sym="C">{positions}</symbol></create>'.encode()
    )
    assert created.count(b"<created") == len(SELLERS) + 2 + len(SELLERS)


def trade(server: ServerProcess) -> int:
    """Each round every seller rests a share and the buyer takes them all
    (every order closes), and the buyer rests and cancels a bid; one last
    bid stays open. How many orders were opened."""
    requests = []
    for _ in range(ROUNDS):
        requests += [
            f'<transactions id="{s}"><order sym="C" amount="-1" limit="5"/></transactions>'
            for s in SELLERS
        ]
        requests.append(
            f'<transactions id="{BUYER}"><order sym="C" amount="{len(SELLERS)}" limit="5"/>'
            '<order sym="C" amount="1" limit="1"/></transactions>'
        )
    requests.append(
        f'<transactions id="{BUYER}"><order sym="C" amount="1" limit="2"/></transactions>'
    )
    replies = pipelined(server, requests)
    opened = sum(reply.count(b"<opened") for reply in replies)
    resting_bids = [
        int(r.split(b'id="')[-1].split(b'"')[0]) for r in replies[len(SELLERS) :: len(SELLERS) + 1]
    ]
    cancels = [
        f'<transactions id="{BUYER}"><cancel id="{order_id}"/></transactions>'
        for order_id in resting_bids[:ROUNDS]
    ]
    assert all(b"<canceled id=" in reply for reply in pipelined(server, cancels))
    return opened


def pipelined(server: ServerProcess, requests: list[str]) -> list[bytes]:
    with server.connect() as sock:
        sock.sendall(b"".join(frame_line(request.encode()) for request in requests))
        return read_replies(sock, len(requests))


def questions(orders: int) -> list[str]:
    """Queries of every order (and of one never issued) by every account,
    and a cancel of each closed one (all but the last) by its owner and
    by other accounts."""
    ids = range(1, orders + 2)
    closed = [*range(1, orders), orders + 1]
    return [
        *(
            f'<transactions id="{who}"><query id="{i}"/></transactions>'
            for who in [*SELLERS, BUYER, OTHER]
            for i in ids
        ),
        *(
            f'<transactions id="{who}"><cancel id="{i}"/><query id="{i}"/></transactions>'
            for who in [SELLERS[0], BUYER, OTHER]
            for i in closed
        ),
    ]


def orders_in_memory(server: ServerProcess) -> float:
    return value(scrape(server), "bourse_orders_in_memory")


def test_closed_orders_are_answered_the_same_from_the_tables_and_after_a_restart(
    database_url: str,
) -> None:
    with running_server(database_url, "--metrics-port", "0") as server:
        set_up(server)
        opened = trade(server)
        eventually(lambda: orders_in_memory(server) == 1)
        before = pipelined(server, questions(opened))
        assert server.stop() == 0
    asked = questions(opened)
    first_by_owner = before[asked.index('<transactions id="11"><query id="1"/></transactions>')]
    assert b'<status id="1"><executed shares="1" price="5" time="' in first_by_owner
    first_by_other = before[asked.index('<transactions id="30"><query id="1"/></transactions>')]
    assert b'<error id="1">Order does not exist</error>' in first_by_other
    never_issued = before[
        asked.index(f'<transactions id="11"><query id="{opened + 1}"/></transactions>')
    ]
    assert b"Order does not exist" in never_issued
    assert any(b"no open shares to cancel" in reply for reply in before)
    with running_server(database_url, "--metrics-port", "0") as server:
        assert orders_in_memory(server) == 1, "recovery loads the open order only"
        assert pipelined(server, questions(opened)) == before
