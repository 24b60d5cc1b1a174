"""The market-data feed against the system of record, over real sockets.

A random order stream goes in through the XML port while a WebSocket
subscriber follows both symbols. Once the stream is answered, the book the
subscriber rebuilt from its snapshot and updates must equal the open
orders in PostgreSQL, level by level; its trades must equal the fills
stored there, in order; and every symbol's ``seq`` must have counted up
without a gap, to the value the database holds. After a restart the feed
continues from the database: same books, ``seq`` going on from where it
stopped. Runs with ``--workers 0`` and ``--workers 2`` (conftest).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import psycopg

from tests.databases import fresh_database
from tests.e2e.harness import ServerProcess, exchange, running_server

SYMBOLS = ("AAA", "BBB")
ACCOUNTS = ("1", "2", "3", "4")
OPENED = re.compile(rb'<opened [^>]*id="(\d+)"')


def setup_xml() -> bytes:
    accounts = "".join(f'<account id="{a}" balance="1000000"/>' for a in ACCOUNTS)
    positions = "".join(
        f'<symbol sym="{s}">'
        + "".join(f'<account id="{a}">100000</account>' for a in ACCOUNTS)
        + "</symbol>"
        for s in SYMBOLS
    )
    return f"<create>{accounts}{positions}</create>".encode()


def random_request(rng: random.Random, opened: dict[str, list[int]]) -> tuple[str, bytes]:
    """One ``<transactions>``: mostly orders around 100 (so they cross),
    sometimes a cancel of one of the account's earlier orders."""
    account = rng.choice(ACCOUNTS)
    if opened[account] and rng.random() < 0.2:
        order_id = opened[account].pop(rng.randrange(len(opened[account])))
        body = f'<cancel id="{order_id}"/>'
    else:
        amount = rng.randint(1, 20) * rng.choice((1, -1))
        limit = Decimal(rng.randint(190, 210)) / 2
        body = f'<order sym="{rng.choice(SYMBOLS)}" amount="{amount}" limit="{limit}"/>'
    return account, f'<transactions id="{account}">{body}</transactions>'.encode()


def trade_randomly(server: ServerProcess, requests: int, seed: int) -> None:
    """Send ``requests`` random requests, one at a time, noting order ids."""
    rng = random.Random(seed)
    opened: dict[str, list[int]] = {account: [] for account in ACCOUNTS}
    for _ in range(requests):
        account, xml = random_request(rng, opened)
        reply = exchange(server, xml)
        opened[account].extend(int(found) for found in OPENED.findall(reply))


@dataclass
class Follower:
    """A subscriber's view: each symbol's book and trades, rebuilt from
    the feed, and every ``seq`` it saw."""

    books: dict[str, dict[tuple[str, Decimal], Decimal]] = field(default_factory=dict)
    trades: dict[str, list[tuple[Decimal, Decimal]]] = field(default_factory=dict)
    seqs: dict[str, list[int]] = field(default_factory=dict)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    #: Anything else the server said (replies to ops, errors).
    other: list[dict[str, Any]] = field(default_factory=list)

    def take(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind not in {"snapshot", "book", "trade"}:
            self.other.append(message)
            return
        symbol: str = message["symbol"]
        if kind == "snapshot":
            self.snapshots.append(message)
            self.books[symbol] = {
                (side, Decimal(price)): Decimal(shares)
                for side, levels in (("buy", message["bids"]), ("sell", message["asks"]))
                for price, shares in levels
            }
            self.trades.setdefault(symbol, [])
            self.seqs.setdefault(symbol, []).append(message["seq"])
        elif kind == "book":
            book = self.books[symbol]
            for side, price, shares in message["changes"]:
                if Decimal(shares):
                    book[side, Decimal(price)] = Decimal(shares)
                else:
                    del book[side, Decimal(price)]
            self.seqs[symbol].append(message["seq"])
        elif kind == "trade":
            self.trades[symbol].append((Decimal(message["price"]), Decimal(message["shares"])))
            self.seqs[symbol].append(message["seq"])

    reader: asyncio.Task[None] | None = None

    def last_seq(self, symbol: str) -> int | None:
        seqs = self.seqs.get(symbol)
        return seqs[-1] if seqs else None


@asynccontextmanager
async def following(server: ServerProcess) -> AsyncIterator[Follower]:
    """A WebSocket subscriber to every symbol, reading in the background."""
    follower = Follower()
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{server.http_port}/ws"
        async with session.ws_connect(url) as ws:
            await ws.send_json(
                {"op": "subscribe", "symbols": list(SYMBOLS), "channels": ["book", "trades"]}
            )

            async def read() -> None:
                async for message in ws:
                    frame = json.loads(message.data)
                    for each in frame if isinstance(frame, list) else [frame]:
                        follower.take(each)

            reader = asyncio.create_task(read())
            follower.reader = reader
            try:
                yield follower
            finally:
                reader.cancel()


def stored_book(url: str, symbol: str) -> dict[tuple[str, Decimal], Decimal]:
    """Open orders of ``symbol`` in PostgreSQL, summed per side and price."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT CASE WHEN amount > 0 THEN 'buy' ELSE 'sell' END, limit_price, "
            "sum(open_shares) FROM orders WHERE symbol = %s AND open_shares > 0 "
            "GROUP BY 1, 2",
            (symbol,),
        ).fetchall()
    return {(side, price.normalize()): shares.normalize() for side, price, shares in rows}


def stored_trades(url: str, symbol: str) -> list[tuple[Decimal, Decimal]]:
    """Fills of ``symbol`` in PostgreSQL, in order: one per fill (the
    buying order's execution row)."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT e.price, e.shares FROM executions e JOIN orders o ON o.id = e.order_id "
            "WHERE o.symbol = %s AND o.amount > 0 ORDER BY e.id",
            (symbol,),
        ).fetchall()
    return [(price.normalize(), shares.normalize()) for price, shares in rows]


def final_seqs(url: str) -> dict[str, int] | None:
    """Each symbol's stored ``seq`` once the tables hold every committed
    batch (the journal is empty), else None: before that, the tables trail
    the wire, and a follower equally behind would look caught up."""
    with psycopg.connect(url) as connection:
        if connection.execute("SELECT count(*) FROM journal").fetchone() != (0,):
            return None
        rows = connection.execute("SELECT symbol, market_seq FROM symbols").fetchall()
    return {symbol: int(seq) for symbol, seq in rows}


async def caught_up(follower: Follower, url: str, within: float = 30.0) -> None:
    """Wait until the follower has seen every symbol's final stored ``seq``
    (the requests have all been answered)."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        seqs = final_seqs(url)
        if seqs is not None and all(follower.last_seq(s) == seqs[s] for s in SYMBOLS):
            return
        if follower.reader is not None and follower.reader.done():
            follower.reader.result()  # raises what stopped it
            raise AssertionError(f"feed closed: {follower.other}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"feed behind: {follower.seqs} vs database; also {follower.other}")


def normalized(book: dict[tuple[str, Decimal], Decimal]) -> dict[tuple[str, Decimal], Decimal]:
    return {(side, price.normalize()): shares.normalize() for (side, price), shares in book.items()}


def assert_matches_database(follower: Follower, url: str) -> None:
    for symbol in SYMBOLS:
        assert normalized(follower.books[symbol]) == stored_book(url, symbol)
        seqs = follower.seqs[symbol]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"gap in {symbol}: {seqs}"


async def follow_a_session(server: ServerProcess, url: str, requests: int, seed: int) -> Follower:
    async with following(server) as follower:
        await asyncio.sleep(0.2)  # subscribed before the first order
        await asyncio.to_thread(trade_randomly, server, requests, seed)
        await caught_up(follower, url)
    return follower


def test_subscriber_rebuilds_the_stored_book_and_trades(cluster_url: str) -> None:
    with fresh_database(cluster_url) as url, running_server(url) as server:
        assert server.http_port
        exchange(server, setup_xml())
        follower = asyncio.run(follow_a_session(server, url, requests=300, seed=11))
        assert_matches_database(follower, url)
        for symbol in SYMBOLS:
            assert follower.trades[symbol] == stored_trades(url, symbol)
        assert sum(len(t) for t in follower.trades.values()) > 10, "the stream should trade"
        assert server.stop() == 0, "".join(server.log)


def test_feed_continues_from_the_database_after_a_restart(embedded_admin_url: str) -> None:
    """On the default, embedded PostgreSQL only: what is read back at a
    restart does not depend on the cluster (the rebuild test runs on both)."""
    with fresh_database(embedded_admin_url) as url:
        with running_server(url) as server:
            exchange(server, setup_xml())
            before = asyncio.run(follow_a_session(server, url, requests=150, seed=5))
            assert server.stop() == 0, "".join(server.log)
        with running_server(url) as server:
            after = asyncio.run(follow_a_session(server, url, requests=150, seed=6))
            assert server.stop() == 0, "".join(server.log)
        assert_matches_database(after, url)
    for symbol in SYMBOLS:
        snapshot = next(s for s in after.snapshots if s["symbol"] == symbol)
        assert snapshot["seq"] == before.last_seq(symbol)
        resumed = {(side, Decimal(p)): Decimal(s) for side, p, s in _levels(snapshot)}
        assert normalized(resumed) == normalized(before.books[symbol])


def _levels(snapshot: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [("buy", p, s) for p, s in snapshot["bids"]] + [
        ("sell", p, s) for p, s in snapshot["asks"]
    ]
