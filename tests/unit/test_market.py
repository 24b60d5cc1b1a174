"""Market data derived by the exchange, and the mirror that keeps a copy of
it: one rule a test."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bourse.core.changes import ChangeSet, SequenceRow
from bourse.core.exchange import Exchange
from bourse.core.market import (
    BookChange,
    Level,
    LevelChange,
    MarketSnapshot,
    MarketUpdate,
    OrderEvent,
    Standing,
    SymbolState,
    SymbolSummary,
    Trade,
)
from bourse.core.mirror import MarketMirror
from bourse.core.restore import restore_exchange
from tests.builders import account, cancel, create, order, shares, transactions

D = Decimal


@pytest.fixture
def engine() -> Exchange:
    """Buyers 1 and 3 with cash; seller 2 with 100 SPY and 50 QQQ; setup cut."""
    engine = Exchange()
    engine.apply(
        create(
            account("1", "10000"),
            account("2", "0"),
            account("3", "1000"),
            shares("SPY", "2", "100"),
            shares("QQQ", "2", "50"),
        ),
        now=1,
    )
    engine.take_changes()
    return engine


def cut(engine: Exchange) -> MarketUpdate:
    return engine.take_changes().market


def book_change(update: MarketUpdate, symbol: str) -> BookChange:
    [change] = [m for m in update.messages if isinstance(m, BookChange) and m.symbol == symbol]
    return change


def trades(update: MarketUpdate) -> list[Trade]:
    return [message for message in update.messages if isinstance(message, Trade)]


def test_new_symbols_are_announced_without_messages() -> None:
    engine = Exchange()
    engine.apply(create(account("1", "5"), shares("SPY", "1", "3"), shares("QQQ", "1", "3")), 1)
    changes = engine.take_changes()
    assert changes.market == MarketUpdate(("SPY", "QQQ"), (), ())
    assert changes.sequences == ()
    assert engine.market.seq("SPY") == 0


def test_a_resting_order_makes_a_level(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-10", "5.5")), 7)
    update = cut(engine)
    assert update.messages == (BookChange("SPY", 1, (LevelChange("sell", D("5.5"), D(10)),)),)
    assert update.orders == (
        OrderEvent("2", 1, "SPY", "opened", D(-10), D("5.5"), D(10), D("5.5"), D(10), 7),
    )


def test_orders_at_one_price_make_one_level_of_their_total(engine: Exchange) -> None:
    engine.apply(transactions("1", order("SPY", "3", "2"), order("SPY", "4", "2")), 2)
    engine.apply(transactions("3", order("SPY", "5", "1.5")), 3)
    assert book_change(cut(engine), "SPY").changes == (
        LevelChange("buy", D(2), D(7)),
        LevelChange("buy", D("1.5"), D(5)),
    )


def test_a_fill_reduces_the_resting_level_and_trades_at_its_price(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-10", "5")), 2)
    cut(engine)
    engine.apply(transactions("1", order("SPY", "4", "6")), 3)
    update = cut(engine)
    assert update.messages == (
        Trade("SPY", 2, D(5), D(4), 3),
        BookChange("SPY", 3, (LevelChange("sell", D(5), D(6)),)),
    )


def test_a_level_filled_away_is_sent_as_zero(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-10", "5"), order("SPY", "-10", "6")), 2)
    cut(engine)
    engine.apply(transactions("1", order("SPY", "15", "6")), 3)
    update = cut(engine)
    assert trades(update) == [Trade("SPY", 2, D(5), D(10), 3), Trade("SPY", 3, D(6), D(5), 3)]
    assert book_change(update, "SPY").changes == (
        LevelChange("sell", D(5), D(0)),
        LevelChange("sell", D(6), D(5)),
    )


def test_what_an_incoming_order_leaves_rests_at_its_limit(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-4", "5")), 2)
    engine.apply(transactions("1", order("SPY", "10", "5.25")), 3)
    assert book_change(cut(engine), "SPY").changes == (
        LevelChange("buy", D("5.25"), D(6)),
        LevelChange("sell", D(5), D(0)),
    )


def test_a_cancel_removes_the_open_shares_from_the_level(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-10", "5"), order("SPY", "-3", "5")), 2)
    cut(engine)
    engine.apply(transactions("2", cancel(1)), 4)
    update = cut(engine)
    assert update.messages == (BookChange("SPY", 2, (LevelChange("sell", D(5), D(3)),)),)
    assert update.orders == (
        OrderEvent("2", 1, "SPY", "canceled", D(-10), D(5), D(10), D(5), D(0), 4),
    )


def test_one_book_change_per_symbol_per_cut_after_its_trades(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-5", "5"), order("QQQ", "-5", "3")), 2)
    engine.apply(transactions("1", order("SPY", "2", "5"), order("SPY", "2", "5")), 3)
    engine.apply(transactions("1", order("QQQ", "1", "3")), 4)
    update = cut(engine)
    assert [(type(m).__name__, m.symbol, m.seq) for m in update.messages] == [
        ("Trade", "QQQ", 1),
        ("BookChange", "QQQ", 2),
        ("Trade", "SPY", 1),
        ("Trade", "SPY", 2),
        ("BookChange", "SPY", 3),
    ]
    assert book_change(update, "SPY").changes == (LevelChange("sell", D(5), D(1)),)


def test_seq_runs_on_across_cuts_and_idle_symbols_send_nothing(engine: Exchange) -> None:
    seqs = []
    for now in range(3):
        engine.apply(transactions("2", order("SPY", "-1", "5")), now)
        changes = engine.take_changes()
        seqs += [message.seq for message in changes.market.messages]
        assert changes.sequences == (SequenceRow("SPY", now + 1),)
    assert seqs == [1, 2, 3]
    assert engine.market.seq("QQQ") == 0
    assert cut(engine).messages == ()


def test_both_orders_of_a_fill_get_an_event(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-10", "5")), 2)
    engine.apply(transactions("1", order("SPY", "4", "6")), 3)
    events = cut(engine).orders
    assert [
        (e.account_id, e.order_id, e.kind, e.shares, e.price, e.open_shares) for e in events
    ] == [
        ("2", 1, "opened", D(10), D(5), D(10)),
        ("1", 2, "opened", D(4), D(6), D(4)),
        ("1", 2, "fill", D(4), D(5), D(0)),
        ("2", 1, "fill", D(4), D(5), D(6)),
    ]


def test_order_events_follow_the_order_things_happened(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-10", "5")), 2)
    cut(engine)
    engine.apply(transactions("1", order("SPY", "3", "5")), 3)
    engine.apply(transactions("2", cancel(1)), 4)
    engine.apply(transactions("1", order("SPY", "2", "4"), cancel(3)), 5)
    engine.apply(transactions("3", order("SPY", "1", "4")), 6)
    events = cut(engine).orders
    assert [(e.order_id, e.kind, e.shares, e.open_shares, e.time) for e in events] == [
        (2, "opened", D(3), D(3), 3),
        (2, "fill", D(3), D(0), 3),
        (1, "fill", D(3), D(7), 3),
        (1, "canceled", D(7), D(0), 4),
        (3, "opened", D(2), D(2), 5),
        (3, "canceled", D(2), D(0), 5),
        (4, "opened", D(1), D(1), 6),
    ]


def test_refused_commands_make_no_event(engine: Exchange) -> None:
    engine.apply(transactions("3", order("SPY", "1000", "5")), 2)  # insufficient funds
    engine.apply(transactions("3", order("XYZ", "1", "5")), 2)  # unknown symbol
    engine.apply(transactions("2", order("SPY", "-1", "5")), 2)
    engine.apply(transactions("1", cancel(1)), 3)  # another account's order
    update = cut(engine)
    assert [(e.order_id, e.kind) for e in update.orders] == [(1, "opened")]
    assert len(update.messages) == 1


def test_the_journal_counts_the_sequence_rows_it_will_cut(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-1", "5"), order("QQQ", "-1", "5")), 2)
    counted = engine.journal.row_count()
    changes = engine.take_changes()
    assert len(changes.sequences) == 2
    assert changes.row_count() == counted


def test_the_snapshot_holds_what_was_cut(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-10", "5"), order("SPY", "-5", "6")), 2)
    engine.apply(transactions("1", order("SPY", "4", "6"), order("SPY", "1", "4")), 3)
    cut(engine)
    engine.apply(transactions("1", order("SPY", "1", "3")), 4)  # not cut yet
    spy = SymbolState(
        "SPY",
        2,
        (Level(D(4), D(1)),),
        (Level(D(5), D(6)), Level(D(6), D(5))),
        (Trade("SPY", 1, D(5), D(4), 3),),
    )
    assert engine.market_snapshot() == MarketSnapshot((SymbolState("QQQ", 0, (), (), ()), spy))


def test_standings_value_cash_held_and_shares_at_the_last_price(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-10", "5"), order("QQQ", "-10", "9")), 2)
    engine.apply(transactions("1", order("SPY", "4", "5"), order("SPY", "10", "2")), 3)
    cut(engine)
    # 1: 10000 - 20 paid - 20 held = 9960 free; 4 SPY at 5.
    # 2: 20 cash; 96 SPY (6 held by its sell) at 5; 50 QQQ never traded: 0.
    # 3: 1000 cash, nothing else.
    assert engine.standings() == (
        Standing("1", D(9980), D(10000)),
        Standing("3", D(1000), D(1000)),
        Standing("2", D(20), D(500)),
    )


def test_standings_rank_equal_values_by_account_id() -> None:
    engine = Exchange()
    engine.apply(create(account("b", "7"), account("a", "7"), account("c", "8")), 1)
    assert [standing.account_id for standing in engine.standings()] == ["c", "a", "b"]


def stored(cuts: list[ChangeSet]) -> ChangeSet:
    """What the database holds once ``cuts`` are committed in order."""
    return ChangeSet(
        symbols=[symbol for changes in cuts for symbol in changes.symbols],
        accounts=list({r.account_id: r for c in cuts for r in c.accounts}.values()),
        positions=list({(r.account_id, r.symbol): r for c in cuts for r in c.positions}.values()),
        orders=sorted(
            {r.order_id: r for c in cuts for r in c.orders}.values(), key=lambda r: r.order_id
        ),
        executions=[row for changes in cuts for row in changes.executions],
        deposits=[row for changes in cuts for row in changes.deposits],
        sequences=list({r.symbol: r for c in cuts for r in c.sequences}.values()),
    )


def test_restore_continues_seq_levels_and_recent_trades() -> None:
    engine = Exchange()
    engine.apply(create(account("1", "100"), account("2", "0"), shares("SPY", "2", "20")), 1)
    cuts = [engine.take_changes()]
    engine.apply(transactions("2", order("SPY", "-10", "5"), order("SPY", "-5", "6")), 2)
    cuts.append(engine.take_changes())
    engine.apply(transactions("1", order("SPY", "12", "6")), 3)
    cuts.append(engine.take_changes())
    restored = restore_exchange(stored(cuts))
    assert restored.market_snapshot() == MarketSnapshot(
        (
            SymbolState(
                "SPY",
                4,
                (),
                (Level(D(6), D(3)),),
                (Trade("SPY", 0, D(5), D(10), 3), Trade("SPY", 0, D(6), D(2), 3)),
            ),
        )
    )
    restored.apply(transactions("1", order("SPY", "1", "6")), 4)
    assert [m.seq for m in restored.take_changes().market.messages] == [5, 6]


# the mirror


def spy_snapshot() -> MarketSnapshot:
    return MarketSnapshot(
        (
            SymbolState(
                "SPY",
                4,
                (Level(D(5), D(1)), Level(D(4), D(2)), Level(D(3), D(3))),
                (Level(D(6), D(7)),),
                (Trade("SPY", 2, D(5), D(1), 10), Trade("SPY", 3, D(6), D(2), 11)),
            ),
        )
    )


def test_a_mirror_serves_what_it_was_reset_to() -> None:
    mirror = MarketMirror()
    mirror.reset(spy_snapshot())
    assert mirror.symbols() == (SymbolSummary("SPY", D(6), D(5), D(6)),)
    assert mirror.state("SPY") == spy_snapshot().symbols[0]
    assert mirror.seq("SPY") == 4
    assert mirror.state("XYZ") is None
    assert mirror.seq("XYZ") is None
    assert mirror.trades("XYZ", 5) is None


def test_a_mirror_limits_depth_and_trades() -> None:
    mirror = MarketMirror()
    mirror.reset(spy_snapshot())
    state = mirror.state("SPY", depth=2)
    assert state is not None
    assert state.bids == (Level(D(5), D(1)), Level(D(4), D(2)))
    assert state.asks == (Level(D(6), D(7)),)
    assert mirror.trades("SPY", 1) == (Trade("SPY", 3, D(6), D(2), 11),)
    assert mirror.trades("SPY", 0) == ()
    with pytest.raises(ValueError, match="negative"):
        mirror.state("SPY", depth=-1)


def test_a_mirror_applies_updates_in_order() -> None:
    mirror = MarketMirror(recent_trades=2)
    mirror.reset(spy_snapshot())
    mirror.apply(
        MarketUpdate(
            ("NEW",),
            (
                Trade("SPY", 5, D(6), D(7), 12),
                BookChange(
                    "SPY", 6, (LevelChange("buy", D(4), D(0)), LevelChange("sell", D(6), D(0)))
                ),
                BookChange("NEW", 1, (LevelChange("buy", D("0.5"), D(3)),)),
            ),
            (),
        )
    )
    spy = mirror.state("SPY")
    assert spy is not None
    assert (spy.seq, spy.bids, spy.asks) == (6, (Level(D(5), D(1)), Level(D(3), D(3))), ())
    assert [trade.seq for trade in spy.trades] == [3, 5]
    assert mirror.symbols() == (
        SymbolSummary("NEW", None, D("0.5"), None),
        SymbolSummary("SPY", D(6), D(5), None),
    )


@pytest.mark.parametrize(
    "message",
    [
        BookChange("SPY", 7, ()),  # skips 6
        BookChange("SPY", 5, ()),  # repeats 5
        BookChange("XYZ", 1, ()),  # unknown symbol
    ],
)
def test_a_mirror_refuses_an_update_out_of_order_and_keeps_its_state(
    message: BookChange,
) -> None:
    mirror = MarketMirror()
    mirror.reset(spy_snapshot())
    good = Trade("SPY", 5, D(1), D(1), 12)
    with pytest.raises(ValueError, match=r"follows|unknown symbol"):
        mirror.apply(MarketUpdate(("NEW",), (good, message), ()))
    assert mirror.snapshot() == spy_snapshot()
