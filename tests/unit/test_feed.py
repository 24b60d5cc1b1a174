"""The market-data feed without a network: the JSON shapes of its messages,
the ops it accepts, and its rules (fan-out, private channel, flood,
backlog and conflation, stall, subscriber cap), over a fake connection."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Coroutine
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bourse.core.market import (
    BookChange,
    Level,
    LevelChange,
    MarketSnapshot,
    MarketUpdate,
    OrderEvent,
    OrderEventKind,
    Side,
    Standing,
    SymbolState,
    Trade,
)
from bourse.server.access import AccessPolicy
from bourse.server.config import ServerConfig
from bourse.server.feed import MarketFeed
from bourse.server.feed_wire import (
    SNAPSHOT_TRADES,
    OpError,
    message_text,
    order_text,
    parse_op,
    snapshot_text,
    standings_json,
    symbols_json,
)
from bourse.server.subscriber import CLOSE_POLICY, OPS_PER_SECOND, Subscriber

D = Decimal
#: Frames sent as soon as their messages are queued (``feed_interval=0``);
#: gathering them has a test of its own.
CONFIG = ServerConfig(
    workers=0,
    max_subscribers=10,
    subscriber_backlog=4096,
    closing_stall=0.2,
    feed_interval=0.0,
)


class FakeOutlet:
    """A connection that records what it is sent; ``unsent`` plays the
    bytes its client has not taken yet, which grow by what is sent while
    it does not read; past ``high_water`` of them it takes no more frames."""

    def __init__(self, high_water: int = 100_000) -> None:
        self.sent: list[bytes] = []
        self.unsent = 0
        self.high_water = high_water
        self.reading = True
        self.closed: tuple[int, str] | None = None

    def stop_reading(self, unsent: int) -> None:
        self.reading = False
        self.unsent = unsent

    def read_all(self) -> None:
        self.reading = True
        self.unsent = 0

    def unsent_bytes(self) -> int:
        return self.unsent

    def ready(self, size: int) -> bool:
        return not self.unsent or self.unsent + size <= self.high_water

    async def send(self, frame: bytes) -> None:
        self.sent.append(frame)
        if not self.reading:
            self.unsent += len(frame)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def messages(self) -> list[dict[str, Any]]:
        return [message for text in self.sent for message in frame_messages(text)]


def frame_messages(frame: bytes) -> list[dict[str, Any]]:
    """The messages of one frame: a message, or an array of them."""
    value = json.loads(frame)
    return value if isinstance(value, list) else [value]


def book(symbol: str, seq: int, *changes: tuple[Side, str, str]) -> BookChange:
    levels = tuple(LevelChange(side, D(price), D(shares)) for side, price, shares in changes)
    return BookChange(symbol, seq, levels)


def state(symbol: str, seq: int = 0, trades: tuple[Trade, ...] = ()) -> SymbolState:
    return SymbolState(symbol, seq, (Level(D("10"), D("5")),), (Level(D("11"), D("7")),), trades)


def order_event(account: str = "7", kind: OrderEventKind = "fill") -> OrderEvent:
    return OrderEvent(
        account, 3, "SPY", kind, D("10"), D("10.50"), D("4"), D("10.25"), D("6"), 1700000000
    )


def feed_with(
    *symbols: str, config: ServerConfig = CONFIG, access: AccessPolicy | None = None
) -> MarketFeed:
    feed = MarketFeed(config, access or AccessPolicy())
    feed.reset(MarketSnapshot(tuple(state(symbol) for symbol in symbols)))
    return feed


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


async def settle() -> None:
    """Let the fan-out send what is queued."""
    for _ in range(5):
        await asyncio.sleep(0)


async def subscriber_of(
    feed: MarketFeed, op: dict[str, Any], outlet: FakeOutlet | None = None
) -> tuple[Subscriber, FakeOutlet]:
    outlet = outlet or FakeOutlet()
    subscriber = feed.join(outlet)
    assert subscriber is not None
    await feed.receive(subscriber, json.dumps(op))
    await settle()
    return subscriber, outlet


#: When a test's batch committed (epoch seconds).
COMMITTED = 1700000001.25

SUBSCRIBE_SPY = {"op": "subscribe", "symbols": ["SPY"], "channels": ["book", "trades"]}


# --- the JSON shapes ---------------------------------------------------------


def test_book_message_lists_changes_with_canonical_decimals() -> None:
    changes = book("SPY", 4, ("buy", "10.50", "100"), ("sell", "1E+1", "0"))
    text = message_text(changes, COMMITTED)
    assert json.loads(text) == {
        "type": "book",
        "symbol": "SPY",
        "seq": 4,
        "changes": [["buy", "10.5", "100"], ["sell", "10", "0"]],
        "committed": 1700000001.25,
    }


def test_trade_message() -> None:
    text = message_text(Trade("SPY", 5, D("10.250"), D("3"), 1700000001), COMMITTED)
    assert json.loads(text) == {
        "type": "trade",
        "symbol": "SPY",
        "seq": 5,
        "price": "10.25",
        "shares": "3",
        "time": 1700000001,
        "committed": 1700000001.25,
    }


def test_snapshot_carries_the_book_best_first_and_the_latest_trades() -> None:
    trades = tuple(Trade("SPY", n, D(n), D(1), n) for n in range(1, SNAPSHOT_TRADES + 11))
    snapshot = json.loads(snapshot_text(state("SPY", 110, trades)))
    assert snapshot["type"] == "snapshot"
    assert (snapshot["symbol"], snapshot["seq"]) == ("SPY", 110)
    assert snapshot["bids"] == [["10", "5"]]
    assert snapshot["asks"] == [["11", "7"]]
    assert len(snapshot["trades"]) == SNAPSHOT_TRADES
    assert snapshot["trades"][-1] == {"seq": 110, "price": "110", "shares": "1", "time": 110}


def test_order_event_message() -> None:
    assert json.loads(order_text(order_event(), COMMITTED)) == {
        "type": "order",
        "account": "7",
        "id": 3,
        "symbol": "SPY",
        "event": "fill",
        "amount": "10",
        "limit": "10.5",
        "shares": "4",
        "price": "10.25",
        "open": "6",
        "time": 1700000000,
        "committed": 1700000001.25,
    }


def test_symbols_list_has_nulls_where_there_is_nothing() -> None:
    feed = feed_with("AAA")
    feed.reset(MarketSnapshot((SymbolState("AAA", 3, (), (Level(D("2.5"), D(1)),), ()),)))
    assert symbols_json(feed.mirror) == [
        {"symbol": "AAA", "last": None, "bid": None, "ask": "2.5", "seq": 3}
    ]


def test_standings_are_ranked_from_one() -> None:
    standings = (Standing("2", D("5.00"), D("120")), Standing("1", D("100"), D("100")))
    assert standings_json(standings) == [
        {"rank": 1, "account": "2", "cash": "5", "value": "120"},
        {"rank": 2, "account": "1", "cash": "100", "value": "100"},
    ]


# --- the ops -----------------------------------------------------------------


def test_subscribe_op_is_parsed() -> None:
    op = parse_op(json.dumps(SUBSCRIBE_SPY))
    assert (op.kind, op.symbols, op.channels) == (
        "subscribe",
        ("SPY",),
        frozenset({"book", "trades"}),
    )


def test_orders_op_carries_account_and_token() -> None:
    op = parse_op('{"op":"subscribe","channels":["orders"],"account":"7","token":"t"}')
    assert (op.symbols, op.channels, op.account, op.token) == ((), frozenset({"orders"}), "7", "t")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{nope", "malformed JSON"),
        ("[1]", "expected a JSON object"),
        ('{"op":"buy"}', "unknown op"),
        ('{"op":"subscribe","symbols":["SPY"],"channels":["quotes"]}', "unknown channel: quotes"),
        ('{"op":"subscribe","symbols":["SPY"],"channels":[]}', "unknown channel: none given"),
        ('{"op":"subscribe","symbols":"SPY"}', "'symbols' must be a list of strings"),
        ('{"op":"subscribe","symbols":[1]}', "'symbols' must be a list of strings"),
        ('{"op":"subscribe","channels":["orders"]}', "needs an 'account'"),
        ('{"op":"subscribe","channels":["orders"],"account":7}', "'account' must be a string"),
        (
            '{"op":"subscribe","symbols":["SPY"],"channels":["orders"],"account":"7"}',
            "symbols need",
        ),
    ],
)
def test_bad_ops_are_refused_with_a_reason(text: str, error: str) -> None:
    with pytest.raises(OpError, match=error):
        parse_op(text)


# --- the rules ---------------------------------------------------------------


def test_subscribe_replies_then_sends_a_snapshot_then_the_symbols_messages() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY", "QQQ")
        _, outlet = await subscriber_of(feed, SUBSCRIBE_SPY)
        feed.publish(MarketUpdate((), (book("QQQ", 1, ("buy", "1", "1")),), ()))
        feed.publish(MarketUpdate((), (book("SPY", 1, ("buy", "10", "9")),), ()))
        await settle()
        types = [(message["type"], message.get("symbol")) for message in outlet.messages()]
        assert types == [("subscribed", None), ("snapshot", "SPY"), ("book", "SPY")]
        assert outlet.messages()[2]["seq"] == 1

    run(scenario)


def test_a_message_is_encoded_once_for_every_subscriber() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY")
        _, first = await subscriber_of(feed, SUBSCRIBE_SPY)
        _, second = await subscriber_of(feed, SUBSCRIBE_SPY)
        feed.publish(MarketUpdate((), (book("SPY", 1, ("buy", "10", "9")),), ()))
        await settle()
        assert first.sent[-1] is second.sent[-1]

    run(scenario)


def test_each_subscriber_gets_its_own_symbols_of_an_update_in_order() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY", "QQQ", "IWM")
        both = {"op": "subscribe", "symbols": ["SPY", "QQQ"], "channels": ["book"]}
        _, spy = await subscriber_of(feed, SUBSCRIBE_SPY)
        _, pair = await subscriber_of(feed, both)
        _, same_pair = await subscriber_of(feed, both)
        changes = (
            book("QQQ", 1, ("buy", "1", "1")),
            book("IWM", 1, ("buy", "2", "2")),
            book("SPY", 1, ("buy", "3", "3")),
        )
        feed.publish(MarketUpdate((), changes, ()))
        await settle()
        assert json.loads(spy.sent[-1])["symbol"] == "SPY"  # alone: the message itself
        assert [m["symbol"] for m in json.loads(pair.sent[-1])] == ["QQQ", "SPY"]
        assert pair.sent[-1] == same_pair.sent[-1]

    run(scenario)


def test_unknown_symbol_is_an_error_and_changes_nothing() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY")
        subscriber, outlet = await subscriber_of(
            feed, {"op": "subscribe", "symbols": ["SPY", "NOPE"], "channels": ["book"]}
        )
        assert outlet.messages() == [{"type": "error", "message": "unknown symbol: NOPE"}]
        assert subscriber.symbols == set()

    run(scenario)


def test_unsubscribe_stops_the_symbols_messages() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY")
        subscriber, outlet = await subscriber_of(feed, SUBSCRIBE_SPY)
        await feed.receive(subscriber, '{"op":"unsubscribe","symbols":["SPY"]}')
        feed.publish(MarketUpdate((), (book("SPY", 1, ("buy", "10", "9")),), ()))
        await settle()
        assert [message["type"] for message in outlet.messages()][-1] == "unsubscribed"

    run(scenario)


def tokens(tmp_path: Path, account: str, token: str) -> AccessPolicy:
    path = tmp_path / "tokens"
    path.write_text(f"{account} {hashlib.sha256(token.encode()).hexdigest()}\n")
    return AccessPolicy.build(admin_listener=False, create_networks=(), token_file=path)


def test_orders_channel_needs_the_accounts_token_when_tokens_are_configured(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        feed = feed_with("SPY", access=tokens(tmp_path, "7", "secret"))
        op = {"op": "subscribe", "channels": ["orders"], "account": "7", "token": "guess"}
        _, refused = await subscriber_of(feed, op)
        _, allowed = await subscriber_of(feed, {**op, "token": "secret"})
        feed.publish(MarketUpdate((), (), (order_event("7"), order_event("8"))))
        await settle()
        assert refused.messages() == [{"type": "error", "message": "account or token refused"}]
        assert [message["type"] for message in allowed.messages()] == ["subscribed", "order"]
        assert allowed.messages()[1]["account"] == "7"

    run(scenario)


def test_orders_channel_is_open_without_tokens() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY")
        _, outlet = await subscriber_of(
            feed, {"op": "subscribe", "channels": ["orders"], "account": "8"}
        )
        feed.publish(MarketUpdate((), (), (order_event("8", "opened"),)))
        await settle()
        assert outlet.messages()[-1]["event"] == "opened"

    run(scenario)


def test_a_flood_of_ops_closes_the_connection() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY")
        subscriber, outlet = await subscriber_of(feed, SUBSCRIBE_SPY)
        for _ in range(int(OPS_PER_SECOND) + 1):
            await feed.receive(subscriber, json.dumps(SUBSCRIBE_SPY))
        assert outlet.closed == (CLOSE_POLICY, "too many messages")

    run(scenario)


def test_subscribers_past_the_cap_are_refused() -> None:
    feed = feed_with("SPY", config=replace(CONFIG, max_subscribers=2))
    assert feed.join(FakeOutlet()) is not None
    assert feed.join(FakeOutlet()) is not None
    assert feed.join(FakeOutlet()) is None
    assert feed.subscribers == 2


def test_reset_sends_every_subscriber_a_fresh_snapshot() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY")
        _, outlet = await subscriber_of(feed, SUBSCRIBE_SPY)
        feed.reset(MarketSnapshot((state("SPY", 42),)))
        await settle()
        assert outlet.messages()[-1]["type"] == "snapshot"
        assert outlet.messages()[-1]["seq"] == 42

    run(scenario)


def publish_books(feed: MarketFeed, first_seq: int, count: int) -> None:
    for seq in range(first_seq, first_seq + count):
        feed.publish(MarketUpdate((), (book("SPY", seq, ("buy", "10", str(seq))),), ()))


def test_a_slow_subscriber_is_bounded_then_conflated_into_a_snapshot() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY")
        subscriber, outlet = await subscriber_of(
            feed, {**SUBSCRIBE_SPY, "channels": ["book", "trades", "orders"], "account": "7"}
        )
        outlet.stop_reading(unsent=4000)
        publish_books(feed, 1, 50)
        feed.publish(MarketUpdate((), (), (order_event("7"),)))
        assert subscriber.lagging
        assert feed.largest_backlog <= CONFIG.subscriber_backlog
        await settle()
        outlet.sent.clear()
        outlet.read_all()
        await asyncio.sleep(0.1)
        last = outlet.messages()
        assert [message["type"] for message in last] == ["snapshot", "missed"]
        assert last[0]["seq"] == 50
        assert last[1] == {"type": "missed", "orders": 1}
        publish_books(feed, 51, 1)
        await settle()
        assert outlet.messages()[-1]["seq"] == 51

    run(scenario)


def test_a_subscriber_that_takes_nothing_for_the_stall_is_closed() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY")
        _, outlet = await subscriber_of(feed, SUBSCRIBE_SPY)
        outlet.stop_reading(unsent=CONFIG.subscriber_backlog)
        publish_books(feed, 1, 1)
        await asyncio.sleep(CONFIG.closing_stall * 2)
        assert outlet.closed == (CLOSE_POLICY, "too slow")

    run(scenario)


def test_a_slow_subscriber_that_keeps_reading_is_not_closed() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY")
        subscriber, outlet = await subscriber_of(feed, SUBSCRIBE_SPY)
        outlet.stop_reading(unsent=CONFIG.subscriber_backlog)
        publish_books(feed, 1, 1)
        for _ in range(4):
            await asyncio.sleep(CONFIG.closing_stall / 2)
            outlet.unsent -= 100
        assert outlet.closed is None
        assert subscriber.lagging

    run(scenario)


def test_snapshots_asked_past_the_backlog_wait_until_the_client_has_read() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY")
        trades = tuple(Trade("SPY", n, D(n), D(1), n) for n in range(1, 101))
        feed.reset(MarketSnapshot((state("SPY", 100, trades),)))
        assert len(feed.snapshot_text("SPY") or "") > CONFIG.subscriber_backlog
        outlet = FakeOutlet()
        outlet.stop_reading(unsent=1)
        subscriber, _ = await subscriber_of(feed, SUBSCRIBE_SPY, outlet)
        assert subscriber.lagging
        assert [message["type"] for message in outlet.messages()] == ["subscribed"]
        outlet.read_all()
        await asyncio.sleep(0.1)
        assert [message["type"] for message in outlet.messages()] == ["subscribed", "snapshot"]

    run(scenario)


def test_a_client_that_only_sends_ops_and_never_reads_is_closed() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY")
        subscriber, outlet = await subscriber_of(feed, SUBSCRIBE_SPY)
        outlet.stop_reading(unsent=CONFIG.subscriber_backlog)
        await feed.receive(subscriber, "{nope")
        assert subscriber.lagging
        await asyncio.sleep(CONFIG.closing_stall * 2)
        assert outlet.closed == (CLOSE_POLICY, "too slow")

    run(scenario)


def test_messages_within_the_interval_leave_together_in_one_array_frame() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY", config=replace(CONFIG, feed_interval=0.2))
        _, outlet = await subscriber_of(feed, SUBSCRIBE_SPY)
        frames_before = len(outlet.sent)  # the reply and the snapshot went out at once
        for seq in range(1, 4):
            feed.publish(MarketUpdate((), (book("SPY", seq, ("buy", "10", str(seq))),), ()))
        await settle()
        assert len(outlet.sent) == frames_before  # held until the interval has passed
        await asyncio.sleep(0.3)
        (frame,) = outlet.sent[frames_before:]
        assert [message["seq"] for message in json.loads(frame)] == [1, 2, 3]
        feed.publish(MarketUpdate((), (book("SPY", 4, ("buy", "10", "4")),), ()))
        await asyncio.sleep(0.3)
        assert json.loads(outlet.sent[-1])["seq"] == 4  # alone: the message itself

    run(scenario)


def test_a_subscriber_joining_between_ticks_gets_only_what_follows_its_snapshot() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY", config=replace(CONFIG, feed_interval=0.2))
        _, first = await subscriber_of(feed, SUBSCRIBE_SPY)
        feed.publish(MarketUpdate((), (book("SPY", 1, ("buy", "10", "1")),), ()))
        _, second = await subscriber_of(feed, SUBSCRIBE_SPY)  # its snapshot holds seq 1
        feed.publish(MarketUpdate((), (book("SPY", 2, ("buy", "10", "2")),), ()))
        await asyncio.sleep(0.3)
        assert [m.get("seq") for m in first.messages()] == [None, 0, 1, 2]
        assert [(m["type"], m.get("seq")) for m in second.messages()] == [
            ("subscribed", None),
            ("snapshot", 1),
            ("book", 2),
        ]

    run(scenario)


def test_order_events_keep_their_place_among_the_market_messages() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY", config=replace(CONFIG, feed_interval=0.2))
        op = {**SUBSCRIBE_SPY, "channels": ["book", "orders"], "account": "7"}
        _, outlet = await subscriber_of(feed, op)
        frames_before = len(outlet.sent)
        feed.publish(MarketUpdate((), (book("SPY", 1, ("buy", "10", "1")),), ()))
        feed.publish(MarketUpdate((), (book("SPY", 2, ("buy", "10", "2")),), (order_event("7"),)))
        feed.publish(MarketUpdate((), (book("SPY", 3, ("buy", "10", "3")),), ()))
        await asyncio.sleep(0.3)
        (frame,) = outlet.sent[frames_before:]
        kinds = [(m["type"], m.get("seq")) for m in frame_messages(frame)]
        assert kinds == [("book", 1), ("book", 2), ("order", None), ("book", 3)]

    run(scenario)


def test_a_connection_without_room_keeps_its_frames_in_order_until_the_client_reads() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY")
        subscriber, outlet = await subscriber_of(feed, SUBSCRIBE_SPY, FakeOutlet(high_water=50))
        outlet.stop_reading(unsent=1)
        outlet.sent.clear()
        publish_books(feed, 1, 2)
        await settle()
        publish_books(feed, 3, 1)
        await settle()
        assert outlet.sent == []  # held: its connection has no room
        assert subscriber.unread > 1
        outlet.read_all()
        await asyncio.sleep(0.1)
        assert [m["seq"] for m in outlet.messages()] == [1, 2, 3]
        assert not subscriber.lagging

    run(scenario)


def test_a_member_of_a_group_is_sent_the_same_bytes_as_the_others() -> None:
    async def scenario() -> None:
        feed = feed_with("SPY", "QQQ")
        both = {"op": "subscribe", "symbols": ["QQQ", "SPY"], "channels": ["book"]}
        outlets = [(await subscriber_of(feed, both))[1] for _ in range(3)]
        changes = (book("SPY", 1, ("buy", "1", "1")), book("QQQ", 1, ("sell", "2", "2")))
        feed.publish(MarketUpdate((), changes, ()))
        await settle()
        frames = {id(outlet.sent[-1]) for outlet in outlets}
        assert len(frames) == 1
        assert [m["symbol"] for m in outlets[0].messages()[-2:]] == ["SPY", "QQQ"]

    run(scenario)
