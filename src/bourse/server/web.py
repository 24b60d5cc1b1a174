"""The web view's HTTP server: the page, the market-data API and the ``/ws`` feed.

It runs on aiohttp, inside the process's own event loop, on a socket the
process has already bound (``docs/market-data.md`` says why aiohttp, with
the figures). Everything it serves comes from the process's ``MarketFeed``:
the HTTP API reads the mirror, each WebSocket connection is one subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

from aiohttp import WSMsgType, web

from bourse.core.market import RECENT_TRADES
from bourse.server.config import ServerConfig
from bourse.server.feed import MarketFeed
from bourse.server.feed_wire import (
    book_json,
    encode,
    error_text,
    standings_json,
    symbols_json,
    trade_json,
)
from bourse.server.subscriber import CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN_LATER, Subscriber

#: The page's files: ``index.html`` (the market view at ``/``, the leaderboard
#: view at ``/leaderboard``) and what it loads.
STATIC = Path(__file__).with_name("static")
#: Seconds a closing handshake may take before the connection is cut.
CLOSE_TIMEOUT = 2.0
#: Seconds between pings to an idle subscriber (one that does not answer
#: within half of it is closed).
HEARTBEAT = 30.0
#: Trades ``/api/trades`` returns when no ``limit`` is given.
DEFAULT_TRADES = 100
#: No caching of market data by browsers or proxies.
FRESH = {"Cache-Control": "no-store"}


class WebServer:
    """The running HTTP server of one process."""

    def __init__(self, runner: web.AppRunner, site: web.SockSite, feed: MarketFeed) -> None:
        self._runner = runner
        self._site = site
        self._feed = feed

    async def close(self) -> None:
        """Stop accepting, close every WebSocket (1001, "server shutting
        down"), then end the HTTP connections left."""
        await self._site.stop()
        await self._feed.close_all(CLOSE_GOING_AWAY, "server shutting down")
        await self._runner.cleanup()


async def start_web(feed: MarketFeed, sock: socket.socket, config: ServerConfig) -> WebServer:
    """Serve the web view and market data from ``feed`` on ``sock`` (bound,
    listening, non-blocking) in the running event loop."""
    app = web.Application()
    _Routes(feed, config).add_to(app.router)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=CLOSE_TIMEOUT)
    await runner.setup()
    site = web.SockSite(runner, sock, backlog=config.listen_backlog)
    await site.start()
    return WebServer(runner, site, feed)


class _Connection:
    """A subscriber's ``Outlet``: an aiohttp WebSocket and its transport."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self._ws = ws
        self._request = request

    def unsent_bytes(self) -> int:
        transport = self._request.transport
        if transport is None or transport.is_closing():
            return 0
        return transport.get_write_buffer_size()

    def ready(self, size: int) -> bool:
        """Writing ``size`` bytes keeps the transport under its high-water
        mark (or it holds nothing yet), so aiohttp writes without waiting."""
        transport = self._request.transport
        if transport is None or transport.is_closing():
            return True  # the send fails at once, and the subscriber leaves
        buffered = transport.get_write_buffer_size()
        return not buffered or buffered + size <= transport.get_write_buffer_limits()[1]

    async def send(self, frame: bytes) -> None:
        await self._ws.send_frame(frame, WSMsgType.TEXT)

    async def close(self, code: int, reason: str) -> None:
        """The closing handshake; then, if the client has not taken all it
        was sent (it does not read), the connection is cut, so that it
        holds neither its buffer nor its socket any longer."""
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(
                self._ws.close(code=code, message=reason.encode()), CLOSE_TIMEOUT
            )
        transport = self._request.transport
        if transport is not None and transport.get_write_buffer_size():
            transport.abort()


class _Routes:
    """The handlers, over one feed."""

    def __init__(self, feed: MarketFeed, config: ServerConfig) -> None:
        self._feed = feed
        self._config = config

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_get("/", self.page)
        router.add_get("/leaderboard", self.leaderboard_page)
        router.add_static("/static", STATIC)
        router.add_get("/api/symbols", self.symbols)
        router.add_get("/api/book/{symbol}", self.book)
        router.add_get("/api/trades/{symbol}", self.trades)
        router.add_get("/api/leaderboard", self.leaderboard)
        router.add_get("/ws", self.websocket)

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def leaderboard_page(self, request: web.Request) -> web.StreamResponse:
        if not self._config.leaderboard:
            raise _json_error(web.HTTPNotFound, "the leaderboard is not published here")
        return web.FileResponse(STATIC / "index.html")  # its script shows the leaderboard

    async def symbols(self, request: web.Request) -> web.Response:
        return _json(symbols_json(self._feed.mirror))

    async def book(self, request: web.Request) -> web.Response:
        depth = _count(request, "depth", maximum=None)
        state = self._feed.mirror.state(request.match_info["symbol"], depth)
        if state is None:
            raise _unknown_symbol(request)
        return _json(book_json(state))

    async def trades(self, request: web.Request) -> web.Response:
        limit = _count(request, "limit", maximum=RECENT_TRADES) or DEFAULT_TRADES
        symbol = request.match_info["symbol"]
        trades = self._feed.mirror.trades(symbol, limit)
        if trades is None:
            raise _unknown_symbol(request)
        body = {
            "symbol": symbol,
            "seq": self._feed.mirror.seq(symbol),
            "trades": [trade_json(trade) for trade in trades],
        }
        return _json(body)

    async def leaderboard(self, request: web.Request) -> web.Response:
        if not self._config.leaderboard:
            raise _json_error(web.HTTPNotFound, "the leaderboard is not published here")
        return _json(standings_json(self._feed.standings))

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """One subscriber, for as long as its connection lasts."""
        if self._feed.subscribers >= self._config.max_subscribers:
            raise _json_error(web.HTTPServiceUnavailable, "too many subscribers, try again later")
        ws = web.WebSocketResponse(
            max_msg_size=self._config.max_feed_message,
            heartbeat=HEARTBEAT,
            timeout=CLOSE_TIMEOUT,
            compress=False,
        )
        await ws.prepare(request)
        connection = _Connection(ws, request)
        subscriber = self._feed.join(connection)
        if subscriber is None:  # filled up while this one was upgraded
            await connection.close(CLOSE_TRY_AGAIN_LATER, "too many subscribers")
            return ws
        try:
            await self._read(ws, subscriber)
        finally:
            self._feed.leave(subscriber)
        return ws

    async def _read(self, ws: web.WebSocketResponse, subscriber: Subscriber) -> None:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await self._feed.receive(subscriber, message.data)
            elif message.type is WSMsgType.BINARY:
                subscriber.push(error_text("expected a text message of JSON"))


def _json(body: object) -> web.Response:
    return web.json_response(body, dumps=encode, headers=FRESH)


def _json_error(kind: type[web.HTTPError], message: str) -> web.HTTPError:
    return kind(text=encode({"error": message}), content_type="application/json")


def _unknown_symbol(request: web.Request) -> web.HTTPError:
    return _json_error(web.HTTPNotFound, f"unknown symbol: {request.match_info['symbol']}")


def _count(request: web.Request, name: str, *, maximum: int | None) -> int | None:
    """Query parameter ``name``, a whole number from 1 to ``maximum``; None
    when absent."""
    text = request.query.get(name)
    if text is None:
        return None
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else 0
    if value < 1 or (maximum is not None and value > maximum):
        bound = f"1 to {maximum}" if maximum is not None else "at least 1"
        raise _json_error(web.HTTPBadRequest, f"'{name}' must be a whole number, {bound}")
    return value
