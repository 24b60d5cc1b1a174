"""The bench's subscriber process against a fake market-data server on
127.0.0.1 (real sockets, real WebSockets, the real child process): it
counts every update, finds gaps, counts fresh snapshots, notices
subscribers left behind, and asks again for symbols a server did not know
yet."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import WSMsgType, web

from bourse.bench.feed_watch import FeedUnavailableError, SubscriberFleet
from bourse.bench.subscribers import FeedResult

HOST = "127.0.0.1"


class FakeFeed:
    """``/api/symbols`` and ``/ws`` as the feed serves them, driven by hand."""

    def __init__(self, seqs: dict[str, int], refusals: int = 0) -> None:
        self.seqs = dict(seqs)
        self.sockets: list[web.WebSocketResponse] = []
        self._refusals = refusals

    async def symbols(self, request: web.Request) -> web.Response:
        rows = [{"symbol": symbol, "seq": seq} for symbol, seq in sorted(self.seqs.items())]
        return web.json_response(rows)

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        refusals = self._refusals
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            op = json.loads(message.data)
            if refusals:
                refusals -= 1
                await ws.send_str(json.dumps({"type": "error", "message": "unknown symbol"}))
                continue
            await ws.send_str(json.dumps({"type": "subscribed", "symbols": op["symbols"]}))
            for symbol in op["symbols"]:
                await ws.send_str(json.dumps(self._snapshot(symbol)))
            self.sockets.append(ws)
        return ws

    def _snapshot(self, symbol: str) -> dict[str, object]:
        return {"type": "snapshot", "symbol": symbol, "seq": self.seqs[symbol], "bids": []}

    def _next(self, symbol: str) -> dict[str, object]:
        self.seqs[symbol] += 1
        seq = self.seqs[symbol]
        return {"type": "trade", "symbol": symbol, "seq": seq, "committed": time.time()}

    async def _send(self, message: object) -> None:
        text = json.dumps(message)
        for ws in self.sockets:
            await ws.send_str(text)

    async def publish(self, symbol: str, count: int = 1) -> None:
        """``count`` updates of ``symbol``: one per frame, or in one array."""
        messages = [self._next(symbol) for _ in range(count)]
        await self._send(messages[0] if count == 1 else messages)

    async def resnapshot(self, symbol: str) -> None:
        await self._send(self._snapshot(symbol))


@asynccontextmanager
async def serving(feed: FakeFeed) -> AsyncIterator[int]:
    """``feed`` on a free loopback port, for the duration."""
    app = web.Application()
    app.router.add_get("/api/symbols", feed.symbols)
    app.router.add_get("/ws", feed.websocket)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        for ws in feed.sockets:
            await ws.close()
        await runner.cleanup()


Script = Callable[[FakeFeed], Awaitable[None]]


def _follow(
    feed: FakeFeed, script: Script, subscribers: int = 3, timeout: float = 30
) -> FeedResult:
    """Start subscribers to ``feed``, run ``script`` on it, collect the result."""

    async def scenario() -> FeedResult:
        async with serving(feed) as port:
            fleet = await SubscriberFleet.start(HOST, port, subscribers, set(feed.seqs))
            try:
                assert len(feed.sockets) == subscribers
                await script(feed)
                return await fleet.finish(HOST, port, timeout)
            finally:
                fleet.stop()

    return asyncio.run(scenario())


async def _steady(feed: FakeFeed) -> None:
    for _ in range(10):
        await feed.publish("A")
        await feed.publish("B", count=3)


def test_every_subscriber_counts_every_update_in_single_and_array_frames() -> None:
    result = _follow(FakeFeed({"A": 0, "B": 7}), _steady)
    assert result.ok, result.problems
    assert (result.subscribers, result.symbols) == (3, 2)
    assert result.messages == 3 * 40
    assert result.frames == 3 * 20  # B's three updates come in one array
    assert result.fewest_messages == 40
    assert (result.gaps, result.snapshots_after_first, result.behind) == (0, 0, 0)
    assert result.undated == 0
    assert 0 <= result.delay_ms["min"] <= result.delay_ms["p50"] <= result.delay_ms["max"]


async def _skip_and_resnapshot(feed: FakeFeed) -> None:
    await feed.publish("A")
    feed.seqs["A"] += 1  # a message lost on the way
    await feed.publish("A")
    feed.seqs["B"] += 5
    await feed.resnapshot("B")  # a legitimate jump
    await feed.publish("B")


def test_a_lost_message_is_a_gap_and_a_fresh_snapshot_is_not() -> None:
    result = _follow(FakeFeed({"A": 0, "B": 0}), _skip_and_resnapshot)
    assert result.gaps == 3
    assert result.snapshots_after_first == 3
    assert result.behind == 0
    assert not result.ok


async def _unsent(feed: FakeFeed) -> None:
    await feed.publish("A")
    feed.seqs["A"] += 1  # published as the last seq, never sent


def test_subscribers_short_of_the_final_seq_are_behind() -> None:
    result = _follow(FakeFeed({"A": 0}), _unsent, subscribers=2, timeout=0.5)
    assert result.behind == 2
    assert "subscriber 0: behind, A at 1, not 2" in result.problems
    assert not result.ok


async def _nothing(feed: FakeFeed) -> None:
    await feed.publish("A")


def test_a_refused_subscribe_is_asked_again() -> None:
    result = _follow(FakeFeed({"A": 0}, refusals=2), _nothing, subscribers=2)
    assert result.ok, result.problems
    assert result.messages == 2


def test_no_web_server_is_reported_not_followed() -> None:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(FeedUnavailableError, match=f"no market data on port {port}"):
            asyncio.run(SubscriberFleet.start(HOST, port, 1, {"A"}))
