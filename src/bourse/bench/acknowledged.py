"""What clients were told, and the checks that it survived: the trading
clients of the crash drills record every order, fill and cancel the
exchange acknowledged, and after a fault every acknowledged order must be
answered the same through the protocol, and the database must pass its
conservation audit.

Kept apart from the fault cycles (``crash``) because other drills (the
recovery test with many gateways, the failover cycles of a replicated
PostgreSQL) load and check a server the same way with faults of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

import psycopg
from lxml import etree

from bourse.bench.load import REPLY_END, send_one
from bourse.bench.run import check_database
from bourse.bench.server_process import Server
from bourse.bench.xml import frame

SYMBOLS = ("AAA", "BBB")

#: Queries sent in one request while verifying.
QUERIES_PER_REQUEST = 200

#: Seconds between two probes of an exchange that is not serving yet.
PROBE_INTERVAL = 0.05

#: Seconds one probe may wait for its reply.
PROBE_TIMEOUT = 10.0


class Fill(NamedTuple):
    """One execution as a client saw it: its ``<executed>``'s attributes."""

    shares: str
    price: str
    time: str


@dataclass(slots=True)
class SeenOrder:
    """What clients were told about one order."""

    account_id: str
    amount: Decimal
    fills: list[Fill] = field(default_factory=list)
    canceled: str | None = None


@dataclass(slots=True)
class Acknowledged:
    """Everything the exchange acknowledged to the clients, across cycles."""

    orders: dict[int, SeenOrder] = field(default_factory=dict)
    requests: int = 0


async def exchange_xml(port: int, xml: bytes) -> bytes:
    """``xml`` framed and sent on a connection of its own to the server on
    ``port`` of the loopback; its reply."""
    return await send_one("127.0.0.1", port, frame(xml))


def _parse(reply: bytes) -> list[etree._Element]:
    return list(etree.fromstring(reply))


def _fills(status: etree._Element) -> list[Fill]:
    """The executions of an order's ``<status>`` or ``<canceled>``."""
    return [
        Fill(e.get("shares", ""), e.get("price", ""), e.get("time", ""))
        for e in status
        if e.tag == "executed"
    ]


class Client:
    """One account trading on its own: orders, queries and cancels of its
    own acknowledged orders; every acknowledgement is recorded."""

    def __init__(self, account_id: str, seen: Acknowledged, rng: random.Random) -> None:
        self.account_id = account_id
        self.seen = seen
        self.rng = rng
        #: The ids of this client's acknowledged orders, in the order opened.
        self.own: list[int] = []

    def next_request(self) -> bytes:
        rng, own = self.rng, self.own
        children = []
        for _ in range(rng.randint(1, 3)):
            roll = rng.random()
            if own and roll < 0.15:
                children.append(f'<query id="{rng.choice(own)}"/>')
            elif own and roll < 0.3:
                children.append(f'<cancel id="{rng.choice(own)}"/>')
            else:
                amount = rng.randint(1, 20) * rng.choice((1, -1))
                limit = f"{rng.randint(95, 105)}.{rng.randint(0, 99):02d}"
                children.append(
                    f'<order sym="{rng.choice(SYMBOLS)}" amount="{amount}" limit="{limit}"/>'
                )
        return f'<transactions id="{self.account_id}">{"".join(children)}</transactions>'.encode()

    def record(self, reply: bytes) -> None:
        """Note what an acknowledged reply says (an "unavailable" refusal
        acknowledges nothing)."""
        if b"Exchange unavailable" in reply:
            return
        self.seen.requests += 1
        for element in _parse(reply):
            if element.tag == "opened":
                order_id = int(element.get("id", "0"))
                self.seen.orders[order_id] = SeenOrder(
                    self.account_id, Decimal(element.get("amount", "0"))
                )
                self.own.append(order_id)
            elif element.tag in ("status", "canceled"):
                self._record_history(element)

    def _record_history(self, element: etree._Element) -> None:
        order = self.seen.orders[int(element.get("id", "0"))]
        fills = _fills(element)
        if len(fills) > len(order.fills):
            order.fills = fills
        for part in element:
            if part.tag == "canceled":
                order.canceled = part.get("shares")

    async def run_pipelined(self, host: str, port: int, stop: asyncio.Event) -> None:
        """Send requests in bursts of several before reading their replies."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            reader, writer = await asyncio.open_connection(host, port)
            while not stop.is_set():
                burst = [self.next_request() for _ in range(self.rng.randint(2, 5))]
                writer.write(b"".join(frame(xml) for xml in burst))
                for _ in burst:
                    self.record(await reader.readuntil(REPLY_END))
            writer.close()

    async def run_one_per_connection(self, host: str, port: int, stop: asyncio.Event) -> None:
        """Send each request on a connection of its own."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while not stop.is_set():
                self.record(await send_one(host, port, frame(self.next_request())))


async def trade_around(
    port: int,
    clients: list[Client],
    seconds: float,
    fault: Callable[[], Awaitable[object]],
    settle: float,
) -> None:
    """Half the clients pipelined, half one request per connection; after
    ``seconds`` of that, ``fault`` under the load; then the load is told to
    stop, and given ``settle`` seconds to."""
    stop = asyncio.Event()
    half = len(clients) // 2
    tasks = [
        *(asyncio.create_task(c.run_pipelined("127.0.0.1", port, stop)) for c in clients[:half]),
        *(
            asyncio.create_task(c.run_one_per_connection("127.0.0.1", port, stop))
            for c in clients[half:]
        ),
    ]
    try:
        await asyncio.sleep(seconds)
        await fault()
    finally:
        stop.set()
        await asyncio.wait(tasks, timeout=settle)
        for task in tasks:
            task.cancel()


async def served_at(port: int, request: Callable[[], bytes], within: float) -> float | None:
    """The time (``time.monotonic()``) the exchange first answers a probe
    with anything but "unavailable"; None if it has not within ``within``
    seconds. Each probe is ``request()``, sent on a connection of its own;
    one that gets no reply (refused, dropped, too slow) counts as not served."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
            reply = await asyncio.wait_for(exchange_xml(port, request()), PROBE_TIMEOUT)
            if b"Exchange unavailable" not in reply:
                return time.monotonic()
        await asyncio.sleep(PROBE_INTERVAL)
    return None


async def create_accounts(server: Server, clients: list[Client]) -> None:
    """Every client's account, with cash and shares of every symbol."""
    accounts = "".join(f'<account id="{c.account_id}" balance="1000000"/>' for c in clients)
    positions = "".join(
        f'<symbol sym="{s}">'
        + "".join(f'<account id="{c.account_id}">100000</account>' for c in clients)
        + "</symbol>"
        for s in SYMBOLS
    )
    reply = await exchange_xml(server.port, f"<create>{accounts}{positions}</create>".encode())
    if b"<error" in reply:
        raise RuntimeError(f"setup failed: {reply!r}")


async def verify(server: Server, seen: Acknowledged) -> list[str]:
    """Query every acknowledged order of every account, many per request."""
    by_account: dict[str, list[int]] = {}
    for order_id, order in seen.orders.items():
        by_account.setdefault(order.account_id, []).append(order_id)
    problems = []
    for account_id, order_ids in by_account.items():
        for start in range(0, len(order_ids), QUERIES_PER_REQUEST):
            chunk = order_ids[start : start + QUERIES_PER_REQUEST]
            queries = "".join(f'<query id="{order_id}"/>' for order_id in chunk)
            request = f'<transactions id="{account_id}">{queries}</transactions>'
            reply = await exchange_xml(server.port, request.encode())
            statuses = _parse(reply)
            if len(statuses) != len(chunk):
                problems.append(f"{len(chunk)} queries of account {account_id}: {reply[:300]!r}")
                continue
            for order_id, status in zip(chunk, statuses, strict=True):
                problems.extend(_compare(order_id, seen.orders[order_id], status))
    return problems


def _compare(order_id: int, order: SeenOrder, status: etree._Element) -> list[str]:
    if status.tag != "status":
        return [f"order {order_id}: acknowledged but now answered {etree.tostring(status)!r}"]
    fills = _fills(status)
    problems = []
    if fills[: len(order.fills)] != order.fills:
        problems.append(f"order {order_id}: fills {order.fills} acknowledged, now {fills}")
    canceled = [part.get("shares") for part in status if part.tag == "canceled"]
    if order.canceled is not None and canceled != [order.canceled]:
        problems.append(
            f"order {order_id}: cancel of {order.canceled} acknowledged, now {canceled}"
        )
    return problems


async def audit(server: Server) -> list[str]:
    """The database's conservation audit (``Store.audit``), read from where
    the server stores."""
    return await check_database(server.store_url())


async def absent_orders(url: str, seen: Acknowledged) -> list[str]:
    """Every acknowledged order the database at ``url`` does not hold, as
    placed (same id, account and amount), read in SQL rather than through
    the server: what a failover to a standby that lacked it lost. The
    tables trail the commits, so this waits (up to ``PROJECTION_WAIT``
    seconds) for the journal to be projected first."""
    async with await psycopg.AsyncConnection.connect(
        url, connect_timeout=math.ceil(PROBE_TIMEOUT), autocommit=True
    ) as connection:
        await _projected(connection)
        cursor = await connection.execute(
            "SELECT id, account_id, amount FROM orders WHERE id = ANY(%s)", [list(seen.orders)]
        )
        stored = {row[0]: (row[1], row[2]) for row in await cursor.fetchall()}
    return [
        f"order {order_id}: acknowledged but not in the database"
        for order_id, order in seen.orders.items()
        if stored.get(order_id) != (order.account_id, order.amount)
    ]


#: Seconds ``absent_orders`` waits for the tables to catch up with the journal.
PROJECTION_WAIT = 30.0


async def _projected(connection: psycopg.AsyncConnection[Any]) -> None:
    """Return once the journal is empty (every committed batch is in the
    tables), or after ``PROJECTION_WAIT`` seconds."""
    deadline = time.monotonic() + PROJECTION_WAIT
    while time.monotonic() < deadline:
        cursor = await connection.execute("SELECT count(*) FROM journal")
        row = await cursor.fetchone()
        if row is not None and row[0] == 0:
            return
        await asyncio.sleep(0.05)
