"""The web server for real: an aiohttp server on a listening socket on
127.0.0.1 (port 0), aiohttp's own client, market updates built by hand.

Covered: the HTTP API and its errors, the page's files, a book rebuilt
from a snapshot and the updates after it (gap-free), bad ops, oversized
messages, the private channel with and without tokens, a client that
never reads (bounded, conflated, then closed), the subscriber cap, the
leaderboard switch, and closing at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bourse.core.market import (
    BookChange,
    Level,
    LevelChange,
    MarketMessage,
    MarketSnapshot,
    MarketUpdate,
    OrderEvent,
    Side,
    Standing,
    SymbolState,
    Trade,
)
from bourse.server.access import AccessPolicy
from bourse.server.config import ServerConfig
from bourse.server.feed import MarketFeed
from bourse.server.feed_wire import levels_json
from bourse.server.web import STATIC, start_web

pytestmark = pytest.mark.timeout(120)

D = Decimal
#: Frames leave as soon as their messages are queued (``feed_interval=0``),
#: so that tests that publish thousands of updates one by one run quickly.
CONFIG = ServerConfig(workers=0, max_subscribers=5, subscriber_backlog=64 * 1024, feed_interval=0.0)
START = MarketSnapshot(
    (
        SymbolState(
            "SPY",
            2,
            (Level(D("10"), D("100")), Level(D("9.5"), D("20"))),
            (Level(D("10.5"), D("30")),),
            (Trade("SPY", 1, D("10.25"), D("5"), 1700000000),),
        ),
        SymbolState("QQQ", 0, (), (), ()),
    )
)
SUBSCRIBE_SPY = {"op": "subscribe", "symbols": ["SPY"], "channels": ["book", "trades"]}


@contextlib.asynccontextmanager
async def serving(
    config: ServerConfig = CONFIG, access: AccessPolicy | None = None
) -> AsyncIterator[tuple[MarketFeed, str]]:
    """A feed started from ``START`` and served on 127.0.0.1; its base URL.
    Connections get small kernel send buffers (inherited from the listening
    socket), so a client that does not read backs up into the server soon."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    feed = MarketFeed(config, access or AccessPolicy())
    feed.reset(START)
    web = await start_web(feed, sock, config)
    try:
        yield feed, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await web.close()


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as response:
        return response.status, await response.json()


#: Messages of frames already received, not yet taken, per connection.
_PENDING: dict[aiohttp.ClientWebSocketResponse, list[dict[str, Any]]] = {}


async def next_json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next message; a frame may hold several (a JSON array)."""
    pending = _PENDING.setdefault(ws, [])
    if not pending:
        frame = await asyncio.wait_for(ws.receive_json(), 10)
        pending.extend(frame if isinstance(frame, list) else [frame])
    return pending.pop(0)


class RandomMarket:
    """Updates for one symbol, each continuing the last, with a copy of
    the book they make, computed here independently of the mirror."""

    def __init__(self, symbol: str, seq: int, seed: int) -> None:
        self.symbol = symbol
        self.seq = seq
        self.random = random.Random(seed)

    def update(self) -> MarketUpdate:
        messages: list[MarketMessage] = []
        for _ in range(self.random.randrange(0, 3)):
            self.seq += 1
            price = D(self.random.randrange(900, 1100)) / 100
            messages.append(Trade(self.symbol, self.seq, price, D(1), 1700000000 + self.seq))
        self.seq += 1
        messages.append(BookChange(self.symbol, self.seq, self.changes()))
        return MarketUpdate((), tuple(messages), ())

    def changes(self) -> tuple[LevelChange, ...]:
        sides: tuple[Side, Side] = ("buy", "sell")
        return tuple(
            LevelChange(
                self.random.choice(sides),
                D(self.random.randrange(900, 1100)) / 100,
                D(self.random.choice((0, 0, 1, 25, 300))),
            )
            for _ in range(self.random.randrange(1, 12))
        )


class ClientBook:
    """A book kept the way a client keeps it: a snapshot, then changes."""

    def __init__(self) -> None:
        self.seq = -1
        self.sides: dict[str, dict[str, str]] = {"buy": {}, "sell": {}}
        self.gaps = 0

    def apply(self, message: dict[str, Any]) -> None:
        if message["type"] not in {"snapshot", "book", "trade"}:
            return
        if message["type"] == "snapshot":
            self.seq = message["seq"]
            self.sides = {"buy": dict(message["bids"]), "sell": dict(message["asks"])}
            return
        if message["seq"] != self.seq + 1:
            self.gaps += 1
        self.seq = message["seq"]
        for side, price, shares in message.get("changes", ()):
            if shares == "0":
                self.sides[side].pop(price, None)
            else:
                self.sides[side][price] = shares

    def levels(self, side: str) -> list[list[str]]:
        prices = sorted(self.sides[side], key=Decimal, reverse=side == "buy")
        return [[price, self.sides[side][price]] for price in prices]


def test_http_api_serves_the_mirror() -> None:
    async def scenario() -> None:
        async with serving() as (_, base), aiohttp.ClientSession(base) as session:
            assert await get(session, "/api/symbols") == (
                200,
                [
                    {"symbol": "QQQ", "last": None, "bid": None, "ask": None, "seq": 0},
                    {"symbol": "SPY", "last": "10.25", "bid": "10", "ask": "10.5", "seq": 2},
                ],
            )
            assert await get(session, "/api/book/SPY?depth=1") == (
                200,
                {"symbol": "SPY", "seq": 2, "bids": [["10", "100"]], "asks": [["10.5", "30"]]},
            )
            status, body = await get(session, "/api/trades/SPY?limit=5")
            assert (status, body["trades"]) == (
                200,
                [{"seq": 1, "price": "10.25", "shares": "5", "time": 1700000000}],
            )

    run(scenario)


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/api/book/NOPE", 404, "unknown symbol: NOPE"),
        ("/api/trades/NOPE", 404, "unknown symbol: NOPE"),
        ("/api/book/SPY?depth=0", 400, "'depth' must be a whole number, at least 1"),
        ("/api/book/SPY?depth=x", 400, "'depth' must be a whole number, at least 1"),
        ("/api/trades/SPY?limit=1001", 400, "'limit' must be a whole number, 1 to 1000"),
        ("/api/leaderboard", 404, "the leaderboard is not published here"),
        ("/leaderboard", 404, "the leaderboard is not published here"),
    ],
)
def test_http_errors_are_json(path: str, status: int, error: str) -> None:
    async def scenario() -> None:
        async with serving() as (_, base), aiohttp.ClientSession(base) as session:
            assert await get(session, path) == (status, {"error": error})

    run(scenario)


def test_leaderboard_when_published() -> None:
    async def scenario() -> None:
        config = replace(CONFIG, leaderboard=True)
        async with serving(config) as (feed, base), aiohttp.ClientSession(base) as session:
            feed.set_standings((Standing("4", D("10.50"), D("99")),))
            assert await get(session, "/api/leaderboard") == (
                200,
                [{"rank": 1, "account": "4", "cash": "10.5", "value": "99"}],
            )
            async with session.get("/leaderboard") as response:
                assert response.status == 200
                assert await response.read() == (STATIC / "index.html").read_bytes()

    run(scenario)


def test_the_page_and_its_files_are_served() -> None:
    async def scenario() -> None:
        async with serving() as (_, base), aiohttp.ClientSession(base) as session:
            async with session.get("/") as response:
                assert response.status == 200
                assert await response.read() == (STATIC / "index.html").read_bytes()
            async with session.get("/static/style.css") as response:
                assert response.status == 200
                assert await response.read() == (STATIC / "style.css").read_bytes()
            async with session.get("/static/../web.py") as response:
                assert response.status == 404

    run(scenario)


def test_snapshot_then_updates_rebuild_the_mirrors_book_without_gaps() -> None:
    async def scenario() -> None:
        async with serving() as (feed, base), aiohttp.ClientSession(base) as session:
            ws = await session.ws_connect("/ws")
            await ws.send_json(SUBSCRIBE_SPY)
            assert (await next_json(ws))["type"] == "subscribed"
            client = ClientBook()
            client.apply(await next_json(ws))
            market = RandomMarket("SPY", 2, seed=7)
            for _ in range(300):
                feed.publish(market.update())
            while client.seq < market.seq:
                client.apply(await next_json(ws))
            state = feed.mirror.state("SPY")
            assert state is not None
            assert client.gaps == 0
            assert client.seq == state.seq == market.seq
            assert client.levels("buy") == levels_json(state.bids)
            assert client.levels("sell") == levels_json(state.asks)

    run(scenario)


def test_a_bad_op_gets_an_error_and_nothing_else_changes() -> None:
    async def scenario() -> None:
        async with serving() as (feed, base), aiohttp.ClientSession(base) as session:
            other = await session.ws_connect("/ws")
            await other.send_json(SUBSCRIBE_SPY)
            ws = await session.ws_connect("/ws")
            await ws.send_str("{not json")
            assert await next_json(ws) == {"type": "error", "message": "malformed JSON"}
            await ws.send_json(SUBSCRIBE_SPY)
            assert (await next_json(ws))["type"] == "subscribed"
            assert (await next_json(ws))["type"] == "snapshot"
            feed.publish(MarketUpdate((), (BookChange("SPY", 3, ()),), ()))
            assert (await next_json(ws))["seq"] == 3
            assert [(await next_json(other))["type"] for _ in range(3)] == [
                "subscribed",
                "snapshot",
                "book",
            ]

    run(scenario)


def test_an_oversized_message_closes_the_connection() -> None:
    async def scenario() -> None:
        async with serving() as (_, base), aiohttp.ClientSession(base) as session:
            ws = await session.ws_connect("/ws")
            await ws.send_str(" " * (CONFIG.max_feed_message + 1))
            message = await ws.receive(timeout=10)
            assert message.type is aiohttp.WSMsgType.CLOSE
            assert message.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG

    run(scenario)


def fill(account: str) -> OrderEvent:
    return OrderEvent(
        account, 9, "SPY", "fill", D(5), D("10.5"), D(2), D("10.25"), D(3), 1700000001
    )


def test_private_channel_checks_tokens(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text(f"42 {hashlib.sha256(b'right').hexdigest()}\n")
    access = AccessPolicy.build(admin_listener=False, create_networks=(), token_file=token_file)

    async def scenario() -> None:
        async with serving(access=access) as (feed, base), aiohttp.ClientSession(base) as session:
            ws = await session.ws_connect("/ws")
            op = {"op": "subscribe", "channels": ["orders"], "account": "42"}
            await ws.send_json({**op, "token": "wrong"})
            assert await next_json(ws) == {"type": "error", "message": "account or token refused"}
            await ws.send_json(op)
            assert await next_json(ws) == {"type": "error", "message": "account or token refused"}
            await ws.send_json({**op, "token": "right"})
            assert (await next_json(ws))["type"] == "subscribed"
            feed.publish(MarketUpdate((), (), (fill("41"), fill("42"))))
            event = await next_json(ws)
            assert (event["type"], event["account"], event["price"]) == ("order", "42", "10.25")

    run(scenario)


def test_private_channel_needs_no_token_when_none_are_configured() -> None:
    async def scenario() -> None:
        async with serving() as (feed, base), aiohttp.ClientSession(base) as session:
            ws = await session.ws_connect("/ws")
            await ws.send_json({"op": "subscribe", "channels": ["orders"], "account": "42"})
            assert (await next_json(ws))["type"] == "subscribed"
            feed.publish(MarketUpdate((), (), (fill("42"),)))
            assert (await next_json(ws))["event"] == "fill"

    run(scenario)


def test_one_subscriber_past_the_cap_is_refused_before_the_upgrade() -> None:
    async def scenario() -> None:
        config = replace(CONFIG, max_subscribers=1)
        async with serving(config) as (_, base), aiohttp.ClientSession(base) as session:
            first = await session.ws_connect("/ws")
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect("/ws")
            assert refused.value.status == 503
            await first.close()

    run(scenario)


def test_shutdown_closes_subscribers_with_going_away() -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            async with serving() as (_, base):
                ws = await session.ws_connect(f"{base}/ws")
            message = await ws.receive(timeout=10)
            assert (message.type, message.data, message.extra) == (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSCloseCode.GOING_AWAY,
                "server shutting down",
            )

    run(scenario)


class NonReader:
    """A WebSocket client that stops reading after the handshake (a raw
    socket with a small receive buffer: aiohttp's client always reads)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.setblocking(False)
        self.received = b""

    async def subscribe(self, base: str, op: dict[str, Any]) -> None:
        """Connect, upgrade, send ``op``; then read nothing more."""
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, ("127.0.0.1", int(base.rsplit(":", 1)[1])))
        await loop.sock_sendall(
            self.sock,
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n",
        )
        while b"\r\n\r\n" not in self.received:
            self.received += await loop.sock_recv(self.sock, 4096)
        assert self.received.startswith(b"HTTP/1.1 101")
        self.received = self.received.split(b"\r\n\r\n", 1)[1]
        payload = json.dumps(op).encode()
        mask = b"\x01\x02\x03\x04"
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        await loop.sock_sendall(self.sock, bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    async def read_until(self, done: Callable[[list[dict[str, Any]]], bool]) -> list[Any]:
        """Read again, until the messages received so far satisfy ``done``."""
        loop = asyncio.get_running_loop()
        while not done(messages := text_frames(self.received)):
            self.received += await asyncio.wait_for(loop.sock_recv(self.sock, 65536), 10)
        return messages

    async def read_to_end(self) -> None:
        """Read until the server ends the connection (a timeout if it does not)."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionResetError):
            while await asyncio.wait_for(loop.sock_recv(self.sock, 65536), 10):
                pass


def text_frames(data: bytes) -> list[dict[str, Any]]:
    """The complete unmasked text frames (server to client) in ``data``."""
    messages, at = [], 0
    while at + 2 <= len(data):
        size, head = data[at + 1] & 0x7F, 2
        if size >= 126:
            head = 4 if size == 126 else 10
            size = int.from_bytes(data[at + 2 : at + head], "big")
        if at + head + size > len(data):
            break
        if data[at] == 0x81:
            frame = json.loads(data[at + head : at + head + size])
            messages.extend(frame if isinstance(frame, list) else [frame])
        at += head + size
    return messages


def test_a_client_that_does_not_read_is_bounded_then_conflated() -> None:
    async def scenario() -> None:
        async with serving() as (feed, base), aiohttp.ClientSession(base) as session:
            slow = NonReader()
            await slow.subscribe(base, SUBSCRIBE_SPY)
            fast = await session.ws_connect("/ws")
            await fast.send_json(SUBSCRIBE_SPY)
            assert (await next_json(fast))["type"] == "subscribed"
            client = ClientBook()
            client.apply(await next_json(fast))
            market = RandomMarket("SPY", 2, seed=11)
            largest = 0
            for _ in range(6000):
                feed.publish(market.update())
                largest = max(largest, feed.largest_backlog)
                while (message := await next_json(fast))["type"] != "book":
                    client.apply(message)
                client.apply(message)
            assert largest <= CONFIG.subscriber_backlog
            assert client.gaps == 0
            assert client.seq == market.seq
            messages = await slow.read_until(
                lambda got: bool(got) and got[-1].get("seq") == market.seq
            )
            assert messages[-1]["type"] == "snapshot"
            assert [m["type"] for m in messages].count("snapshot") >= 2

    run(scenario)


def test_a_client_that_takes_nothing_for_the_stall_is_closed() -> None:
    async def scenario() -> None:
        config = replace(CONFIG, subscriber_backlog=4096, closing_stall=0.5)
        async with serving(config) as (feed, base):
            slow = NonReader()
            await slow.subscribe(base, SUBSCRIBE_SPY)
            market = RandomMarket("SPY", 2, seed=5)
            async with asyncio.timeout(10):  # well before the heartbeat would close it
                while feed.subscribers == 1:
                    feed.publish(market.update())
                    await asyncio.sleep(0.001)
            assert feed.subscribers == 0
            await slow.read_to_end()

    run(scenario)
