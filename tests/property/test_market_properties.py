"""Random request streams cut into random batches: the market data the
exchange publishes must add up, in a mirror, to the exchange's own books
and fills, numbered without a gap, whatever the batches."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.core.commands import Request
from bourse.core.exchange import Exchange
from bourse.core.market import BookChange, Level, MarketUpdate, OrderEvent, SymbolState, Trade
from bourse.core.mirror import MarketMirror
from bourse.core.money import MONEY, ZERO
from bourse.core.restore import restore_exchange
from tests.property.test_engine_properties import SEED, requests
from tests.unit.test_market import stored

Levels = dict[tuple[str, str, Decimal], Decimal]
Fill = tuple[str, Decimal, Decimal, int]


def resting_levels(exchange: Exchange) -> Levels:
    """Open shares per symbol, side and price, summed from the open orders."""
    levels: Levels = {}
    for order in exchange.orders.values():
        if order.open_shares:
            key = (order.symbol, "buy" if order.is_buy else "sell", order.limit)
            levels[key] = MONEY.add(levels.get(key, ZERO), order.open_shares)
    return levels


def mirrored_levels(mirror: MarketMirror) -> Levels:
    """The mirror's levels, checked to be best first on each side."""
    levels: Levels = {}
    for summary in mirror.symbols():
        state = mirror.state(summary.symbol)
        assert state is not None
        for side, side_levels, best_first in (
            ("buy", state.bids, sorted(state.bids, key=_price, reverse=True)),
            ("sell", state.asks, sorted(state.asks, key=_price)),
        ):
            assert list(side_levels) == best_first
            levels.update(
                ((summary.symbol, side, level.price), level.shares) for level in side_levels
            )
    return levels


def _price(level: Level) -> Decimal:
    return level.price


def fills(exchange: Exchange) -> Counter[Fill]:
    """Every fill once (through its buy order's history)."""
    return Counter(
        (order.symbol, execution.price, execution.shares, execution.time)
        for order in exchange.orders.values()
        if order.is_buy
        for execution in order.executions
    )


def check_seq(update: MarketUpdate, last_seq: dict[str, int]) -> None:
    """Each symbol's messages number on from its last one, without a gap,
    and the book change comes last."""
    for symbol in update.symbols:
        last_seq[symbol] = 0
    kinds: dict[str, list[type]] = {}
    for message in update.messages:
        assert message.seq == last_seq[message.symbol] + 1
        last_seq[message.symbol] = message.seq
        kinds.setdefault(message.symbol, []).append(type(message))
    for kind in kinds.values():
        assert kind == [Trade] * (len(kind) - 1) + [BookChange]


def check_order_events(events: tuple[OrderEvent, ...], exchange: Exchange) -> None:
    """Each order's events step its open shares down from its size (or from
    where the last cut left it) to what is open now."""
    open_shares: dict[int, Decimal] = {}
    for event in events:
        order = exchange.orders[event.order_id]
        before = open_shares.get(event.order_id)
        if event.kind == "opened":
            assert before is None
            assert event.shares == event.open_shares == order.amount.copy_abs()
        elif before is not None:
            assert event.open_shares == MONEY.subtract(before, event.shares)
        open_shares[event.order_id] = event.open_shares
        assert (event.account_id, event.symbol) == (order.account_id, order.symbol)
    for order_id, shares in open_shares.items():
        assert shares == exchange.orders[order_id].open_shares


batches = st.lists(st.lists(requests, min_size=1, max_size=6), max_size=12)


@settings(max_examples=200, deadline=None)
@given(batches)
def test_a_mirror_fed_every_update_holds_the_exchange_books(batches: list[list[Request]]) -> None:
    exchange = Exchange()
    mirror = MarketMirror()
    mirror.reset(exchange.market_snapshot())
    last_seq: dict[str, int] = {}
    trades: Counter[Fill] = Counter()
    stream: list[list[Request]] = [[SEED], *batches]
    for now, batch in enumerate(stream):
        for request in batch:
            exchange.apply(request, now)
        changes = exchange.take_changes()
        check_seq(changes.market, last_seq)
        check_order_events(changes.market.orders, exchange)
        assert {row.symbol: row.seq for row in changes.sequences} == {
            message.symbol: message.seq for message in changes.market.messages
        }
        mirror.apply(changes.market)
        trades.update(
            (m.symbol, m.price, m.shares, m.time)
            for m in changes.market.messages
            if isinstance(m, Trade)
        )
        assert mirrored_levels(mirror) == resting_levels(exchange)
        assert trades == fills(exchange)
        assert mirror.snapshot() == exchange.market_snapshot()
        assert {s.symbol: mirror.seq(s.symbol) for s in mirror.symbols()} == last_seq


@settings(max_examples=100, deadline=None)
@given(batches, st.data())
def test_a_mirror_reset_at_any_cut_agrees(
    batches: list[list[Request]], data: st.DataObject
) -> None:
    """A mirror that starts late, from a snapshot, and one that saw every
    update agree; so does an exchange rebuilt from the rows committed."""
    exchange = Exchange()
    always = MarketMirror()
    always.reset(exchange.market_snapshot())
    late = MarketMirror()
    start = data.draw(st.integers(min_value=0, max_value=len(batches)))
    cuts = []
    stream: list[list[Request]] = [[SEED], *batches]
    for index, batch in enumerate(stream):
        for request in batch:
            exchange.apply(request, index)
        cuts.append(exchange.take_changes())
        always.apply(cuts[-1].market)
        if index == start:
            late.reset(exchange.market_snapshot())
        elif index > start:
            late.apply(cuts[-1].market)
    assert late.snapshot() == always.snapshot()
    restored = restore_exchange(stored(cuts)).market_snapshot()
    assert restored.symbols == tuple(
        SymbolState(
            state.symbol,
            state.seq,
            state.bids,
            state.asks,
            tuple(Trade(t.symbol, 0, t.price, t.shares, t.time) for t in state.trades),
        )
        for state in always.snapshot().symbols
    )
