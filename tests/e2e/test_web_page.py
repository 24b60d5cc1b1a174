"""The web view in a real browser (headless Chromium).

Against a real ``bourse serve``: orders sent over the XML port show up on
the page, first from the feed's snapshot, then live as they trade; the
symbol list, the URL and a refused symbol; the page reconnects after the
server restarts; the leaderboard ranks the accounts and follows trades.
Against a scripted stand-in for ``/ws`` (serving the page's own files): a
gap in ``seq`` makes the page subscribe again and take the new snapshot,
and a dropped connection is reopened.

With ``BOURSE_SCREENSHOT=1`` the first test also saves the screenshots the
README shows (``docs/images/web-view.png`` and ``web-view-phone.png``).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from tests.browser import Browser, Tab, chromium, requires_chromium
from tests.databases import fresh_database
from tests.e2e.harness import ServerProcess, exchange, running_server

pytestmark = requires_chromium

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "bourse" / "server" / "static"
IMAGES = ROOT / "docs" / "images"
LADDER = """[...document.querySelectorAll('#ladder-body tr.ask, #ladder-body tr.bid')]
  .map((row) => [row.className, row.querySelector('.price').textContent,
                 row.querySelector('.size').textContent])"""
TAPE = """[...document.querySelectorAll('#tape-body tr:not(:has(.empty))')]
  .map((row) => [row.querySelector('td.price > span').textContent,
                 row.querySelector('td.size').textContent])"""
BOARD_ROWS = """[...document.querySelectorAll('#board-body tr:not(:has(.empty))')]
  .map((row) => [...row.cells].map((cell) => cell.textContent))"""
SYMBOL_ROWS = """[...document.querySelectorAll('#symbols-body tr:not(:has(.empty))')]
  .map((row) => [...row.cells].map((cell) => cell.textContent))"""
FEED_STATUS = "document.body.dataset.feed"
SUBSCRIBE_OP = {"op": "subscribe", "channels": ["book", "trades"]}
PICTURE_TRADES = 40


@pytest.fixture(scope="module")
def cluster_url(embedded_admin_url: str) -> str:
    """One PostgreSQL is enough here: the page sees the same feed whichever
    holds the data (the feed's own tests run on both)."""
    return embedded_admin_url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


def wait_until_equal(tab: Tab, expression: str, expected: object, timeout: float = 15.0) -> None:
    """Poll ``expression`` in the page until it equals ``expected``."""
    deadline = time.monotonic() + timeout
    value = tab.evaluate(expression)
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        value = tab.evaluate(expression)
    assert value == expected


def create(server: ServerProcess, symbol: str, seller: str, buyer: str) -> None:
    """Two accounts with 10,000,000 each; ``seller`` holds 10,000 shares of ``symbol``."""
    reply = exchange(
        server,
        f'<create><account id="{seller}" balance="10000000"/>'
        f'<account id="{buyer}" balance="10000000"/>'
        f'<symbol sym="{symbol}"><account id="{seller}">10000</account></symbol>'
        f"</create>".encode(),
    )
    assert reply.count(b"<created") == 3, reply


def orders(server: ServerProcess, account: str, symbol: str, *pairs: tuple[str, str]) -> None:
    """Orders of ``account`` in ``symbol``, each (amount, limit); all must open."""
    body = "".join(f'<order sym="{symbol}" amount="{a}" limit="{p}"/>' for a, p in pairs)
    reply = exchange(server, f'<transactions id="{account}">{body}</transactions>'.encode())
    assert reply.count(b"<opened") == len(pairs), reply


def test_page_shows_the_book_and_the_trades_live(server: ServerProcess, browser: Browser) -> None:
    create(server, "SPY", seller="7001", buyer="7002")
    orders(server, "7001", "SPY", ("-120", "512.5"), ("-80", "512.75"))
    orders(server, "7002", "SPY", ("150", "512.25"), ("20", "512.5"))
    tab = browser.open(f"http://127.0.0.1:{server.http_port}/?symbol=SPY")

    wait_until_equal(
        tab,
        LADDER,
        [["ask", "512.75", "80"], ["ask", "512.5", "100"], ["bid", "512.25", "150"]],
    )
    wait_until_equal(tab, TAPE, [["512.5", "20"]])
    assert tab.evaluate(FEED_STATUS) == "live"

    orders(server, "7002", "SPY", ("35", "512.5"))
    wait_until_equal(
        tab,
        LADDER,
        [["ask", "512.75", "80"], ["ask", "512.5", "65"], ["bid", "512.25", "150"]],
    )
    wait_until_equal(tab, TAPE, [["512.5", "35"], ["512.5", "20"]])
    assert tab.evaluate("document.getElementById('quote-last').textContent") == "512.5"
    assert tab.evaluate("document.getElementById('leaderboard-link').hidden") is True

    if os.environ.get("BOURSE_SCREENSHOT") == "1":
        trade_for_the_picture(server)
        wait_until_equal(tab, TAPE + ".length", 2 + PICTURE_TRADES)
        save_screenshots(tab)
    assert tab.errors() == []


def trade_for_the_picture(server: ServerProcess) -> None:
    """A deeper book and 40 trades inside the spread at a price that wanders,
    for the README's picture."""
    sells = [(f"-{40 + 15 * i}", f"{512.5 + 0.25 * i:.2f}") for i in range(2, 10)]
    buys = [(f"{60 + 20 * i}", f"{512.25 - 0.25 * i:.2f}") for i in range(1, 9)]
    orders(server, "7001", "SPY", *sells)
    orders(server, "7002", "SPY", *buys)
    for step in range(PICTURE_TRADES):
        price = ("512.3", "512.35", "512.4", "512.45")[round(1.5 + 1.5 * math.sin(step / 3))]
        shares = str(5 + 7 * (step % 5))
        orders(server, "7002", "SPY", (shares, price))
        orders(server, "7001", "SPY", (f"-{shares}", price))


def save_screenshots(tab: Tab) -> None:
    for width, height, name in [(1280, 800, "web-view.png"), (390, 844, "web-view-phone.png")]:
        tab.resize(width, height)
        tab.wait_for(
            "document.getElementById('chart').getAttribute('width') == "
            "document.getElementById('chart-box').clientWidth"
        )
        time.sleep(1.6)  # let the newest trades' highlight fade
        tab.screenshot(IMAGES / name)


def test_symbol_list_url_and_a_refused_symbol(server: ServerProcess, browser: Browser) -> None:
    create(server, "LIST", seller="7101", buyer="7102")
    orders(server, "7101", "LIST", ("-10", "7.25"), ("-5", "7.5"))
    orders(server, "7102", "LIST", ("4", "7.25"), ("9", "6.875"))
    tab = browser.open(f"http://127.0.0.1:{server.http_port}/")

    wait_until_equal(
        tab,
        f"{SYMBOL_ROWS}.filter(([name]) => name === 'LIST')",
        [["LIST", "7.25", "6.875", "7.25"]],
    )
    assert tab.evaluate("document.getElementById('placeholder').hidden") is False
    tab.evaluate("document.querySelector('a[data-symbol=\"LIST\"]').click()")
    wait_until_equal(tab, "location.search", "?symbol=LIST")
    assert tab.evaluate("document.getElementById('symbol-name').textContent") == "LIST"
    wait_until_equal(tab, TAPE, [["7.25", "4"]])

    refused = browser.open(f"http://127.0.0.1:{server.http_port}/?symbol=NOPE")
    refused.wait_for("!document.getElementById('feed-error').hidden")
    assert "NOPE" in refused.evaluate("document.getElementById('feed-error').textContent")
    assert tab.errors() == refused.errors() == []


def free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def test_page_reconnects_after_the_server_restarts(cluster_url: str, browser: Browser) -> None:
    http_port = free_port()
    with fresh_database(cluster_url) as url:
        with running_server(url, "--http-port", http_port) as first:
            create(first, "BACK", seller="7201", buyer="7202")
            orders(first, "7201", "BACK", ("-5", "20"))
            tab = browser.open(f"http://127.0.0.1:{http_port}/?symbol=BACK")
            wait_until_equal(tab, LADDER, [["ask", "20", "5"]])
            assert first.stop() == 0
            tab.wait_for(f"{FEED_STATUS} === 'reconnecting'")
        with running_server(url, "--http-port", http_port) as second:
            orders(second, "7201", "BACK", ("-3", "21"))
            wait_until_equal(tab, LADDER, [["ask", "21", "3"], ["ask", "20", "5"]], timeout=30)
            assert tab.evaluate(FEED_STATUS) == "live"
            assert second.stop() == 0


def test_leaderboard_ranks_the_accounts_and_refreshes(cluster_url: str, browser: Browser) -> None:
    with fresh_database(cluster_url) as url, running_server(url, "--leaderboard") as server:
        create(server, "LEAD", seller="7301", buyer="7302")
        orders(server, "7301", "LEAD", ("-10", "3.5"))
        orders(server, "7302", "LEAD", ("4", "3.5"))
        board = browser.open(f"http://127.0.0.1:{server.http_port}/leaderboard")
        wait_until_equal(
            board,
            BOARD_ROWS,
            [["1", "7301", "10000014", "10035000"], ["2", "7302", "9999986", "10000000"]],
        )

        orders(server, "7301", "LEAD", ("-5", "4"))
        orders(server, "7302", "LEAD", ("8", "4"))  # 6 at 3.5, then 2 at 4
        wait_until_equal(
            board,
            BOARD_ROWS,
            [["1", "7301", "10000043", "10039995"], ["2", "7302", "9999957", "10000005"]],
        )
        market = browser.open(f"http://127.0.0.1:{server.http_port}/")
        market.wait_for("!document.getElementById('leaderboard-link').hidden")
        assert board.errors() == market.errors() == []
        assert server.stop() == 0


class ScriptedFeed:
    """A stand-in for bourse's web server whose ``/ws`` the test scripts: it
    serves the page's own files, hands over each op the page sends, and
    sends what the test says, so gaps and drops happen on purpose."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ops: queue.Queue[dict[str, Any]] = queue.Queue()
        self.connections = 0
        self._sockets: list[web.WebSocketResponse] = []
        self._runner: web.AppRunner | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]

    def start(self) -> None:
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self._run(self._serve())

    def stop(self) -> None:
        for ws in self._sockets:
            self._run(ws.close())
        if self._runner is not None:
            self._run(self._runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)

    def _run(self, work: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(10)

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_static("/static", STATIC)
        app.router.add_get("/api/symbols", self._no_symbols)
        app.router.add_get("/ws", self._feed)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.SockSite(self._runner, self._listener).start()

    async def _page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _no_symbols(self, request: web.Request) -> web.Response:
        return web.json_response([])

    async def _feed(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        self.connections += 1
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self.ops.put(json.loads(message.data))
        return ws

    def send(self, message: dict[str, Any]) -> None:
        """Send ``message`` on the newest connection."""
        self._run(self._sockets[-1].send_json(message))

    def drop(self) -> None:
        """Close the newest connection, as a server going away would."""
        self._run(self._sockets[-1].close())

    def next_op(self) -> dict[str, Any]:
        return self.ops.get(timeout=10)


@contextmanager
def scripted_feed() -> Iterator[ScriptedFeed]:
    feed = ScriptedFeed()
    feed.start()
    try:
        yield feed
    finally:
        feed.stop()


def snapshot(seq: int, bids: list[list[str]], asks: list[list[str]]) -> dict[str, Any]:
    trade = {"seq": seq, "price": "10", "shares": "3", "time": 1_700_000_000}
    return {
        "type": "snapshot",
        "symbol": "GAP",
        "seq": seq,
        "bids": bids,
        "asks": asks,
        "trades": [trade],
    }


def book(seq: int, *changes: list[str]) -> dict[str, Any]:
    return {"type": "book", "symbol": "GAP", "seq": seq, "changes": list(changes)}


def test_a_gap_in_seq_brings_a_new_snapshot(browser: Browser) -> None:
    with scripted_feed() as feed:
        tab = browser.open(f"http://127.0.0.1:{feed.port}/?symbol=GAP")
        assert feed.next_op() == {**SUBSCRIBE_OP, "symbols": ["GAP"]}
        feed.send(snapshot(5, bids=[["9.5", "10"]], asks=[["10.5", "20"]]))
        wait_until_equal(tab, LADDER, [["ask", "10.5", "20"], ["bid", "9.5", "10"]])

        feed.send(book(6, ["buy", "9.75", "7"], ["sell", "10.5", "0"]))
        wait_until_equal(tab, LADDER, [["bid", "9.75", "7"], ["bid", "9.5", "10"]])
        feed.send(book(8, ["buy", "9.5", "0"]))  # 7 never came
        assert feed.next_op() == {"op": "unsubscribe", "symbols": ["GAP"]}
        assert feed.next_op() == {**SUBSCRIBE_OP, "symbols": ["GAP"]}
        feed.send(book(9, ["buy", "9.75", "0"]))  # not applied: waiting for the snapshot
        assert tab.evaluate(LADDER) == [["bid", "9.75", "7"], ["bid", "9.5", "10"]]

        feed.send(snapshot(9, bids=[["9", "1"]], asks=[["11", "2"]]))
        feed.send(book(9, ["buy", "9", "0"]))  # already in the snapshot
        feed.send(book(10, ["sell", "11.25", "4"]))
        wait_until_equal(
            tab, LADDER, [["ask", "11.25", "4"], ["ask", "11", "2"], ["bid", "9", "1"]]
        )
        assert tab.errors() == []


def test_a_dropped_connection_is_reopened(browser: Browser) -> None:
    with scripted_feed() as feed:
        tab = browser.open(f"http://127.0.0.1:{feed.port}/?symbol=GAP")
        assert feed.next_op() == {**SUBSCRIBE_OP, "symbols": ["GAP"]}
        feed.send(snapshot(3, bids=[["9.5", "10"]], asks=[]))
        wait_until_equal(tab, LADDER, [["bid", "9.5", "10"]])

        feed.drop()
        tab.wait_for(f"{FEED_STATUS} === 'reconnecting'")
        assert feed.next_op() == {**SUBSCRIBE_OP, "symbols": ["GAP"]}
        assert feed.connections == 2
        feed.send(snapshot(12, bids=[["9.25", "4"]], asks=[["9.75", "1"]]))
        wait_until_equal(tab, LADDER, [["ask", "9.75", "1"], ["bid", "9.25", "4"]])
        assert tab.evaluate(FEED_STATUS) == "live"
        assert tab.errors() == []
