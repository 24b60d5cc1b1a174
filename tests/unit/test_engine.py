"""The matching engine against every rule of the protocol, one rule a test."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bourse.core.audit import audit
from bourse.core.commands import Rejected
from bourse.core.errors import ErrorCode
from bourse.core.exchange import Exchange
from bourse.core.results import (
    AccountCreated,
    Canceled,
    Error,
    Execution,
    Opened,
    OrderState,
    Result,
    SharesCreated,
    Status,
)
from tests.builders import account, cancel, create, order, query, shares, transactions

D = Decimal


def balance(engine: Exchange, account_id: str) -> Decimal:
    return engine.ledger.accounts[account_id].balance


def position(engine: Exchange, account_id: str, symbol: str) -> Decimal:
    return engine.ledger.accounts[account_id].positions.get(symbol, D(0))


def opened_id(result: Result) -> int:
    assert isinstance(result, Opened), result
    return result.order_id


def status(engine: Exchange, account_id: str, order_id: int) -> OrderState:
    [result] = engine.apply(transactions(account_id, query(order_id)), now=0)
    assert isinstance(result, Status), result
    return result.state


@pytest.fixture
def engine() -> Exchange:
    """Buyer 1 with $100,000; seller 2 with 1,000 SPY and $0; buyer 3 with $1,000."""
    engine = Exchange()
    engine.apply(
        create(
            account("1", "100000"),
            account("2", "0"),
            account("3", "1000"),
            shares("SPY", "2", "1000"),
        ),
        now=0,
    )
    return engine


# <create>


def test_create_answers_each_child_in_order() -> None:
    engine = Exchange()
    results = engine.apply(
        create(
            account("1", "50"),
            shares("SPY", "1", "10"),
            account("1", "60"),
            shares("SPY", "9", "5"),
            shares("BTC", "1", "2.5"),
        ),
        now=0,
    )
    assert results == [
        AccountCreated("1"),
        SharesCreated("SPY", "1"),
        Error(ErrorCode.ACCOUNT_EXISTS, (("id", "1"),)),
        Error(ErrorCode.ACCOUNT_NOT_FOUND, (("sym", "SPY"), ("id", "9"))),
        SharesCreated("BTC", "1"),
    ]
    assert balance(engine, "1") == D(50)
    assert position(engine, "1", "SPY") == D(10)
    assert position(engine, "1", "BTC") == D("2.5")
    assert "9" not in engine.ledger.accounts


def test_duplicate_account_keeps_original_balance() -> None:
    engine = Exchange()
    engine.apply(create(account("7", "10")), now=0)
    [result] = engine.apply(create(account("7", "99")), now=0)
    assert result == Error(ErrorCode.ACCOUNT_EXISTS, (("id", "7"),))
    assert balance(engine, "7") == D(10)


def test_account_ids_compare_exactly() -> None:
    engine = Exchange()
    results = engine.apply(create(account("7", "1"), account("007", "2")), now=0)
    assert results == [AccountCreated("7"), AccountCreated("007")]


def test_existing_symbol_adds_to_positions() -> None:
    engine = Exchange()
    engine.apply(create(account("1", "0"), shares("SPY", "1", "10")), now=0)
    engine.apply(create(shares("SPY", "1", "5")), now=0)
    assert position(engine, "1", "SPY") == D(15)


def test_symbol_is_created_even_when_its_account_is_missing() -> None:
    engine = Exchange()
    engine.apply(create(shares("NEW", "404", "1")), now=0)
    engine.apply(create(account("1", "100")), now=0)
    [result] = engine.apply(transactions("1", order("NEW", "1", "5")), now=0)
    assert isinstance(result, Opened)


def test_rejected_children_answer_in_place() -> None:
    engine = Exchange()
    bad = Rejected(ErrorCode.INVALID_BALANCE, (("id", "2"),))
    results = engine.apply(create(account("1", "1"), bad, account("3", "1")), now=0)
    assert results == [
        AccountCreated("1"),
        Error(ErrorCode.INVALID_BALANCE, (("id", "2"),)),
        AccountCreated("3"),
    ]


# <transactions>: errors


def test_unknown_account_errors_every_child(engine: Exchange) -> None:
    rejected = Rejected(ErrorCode.INVALID_ORDER_ID, (("id", "x"),))
    results = engine.apply(
        transactions("404", order("SPY", "1", "1"), query(1), cancel(1), rejected), now=0
    )
    assert [r.code for r in results if isinstance(r, Error)] == [ErrorCode.ACCOUNT_NOT_FOUND] * 4
    assert results[0] == Error(
        ErrorCode.ACCOUNT_NOT_FOUND, (("sym", "SPY"), ("amount", "1"), ("limit", "1"))
    )


def test_unknown_symbol(engine: Exchange) -> None:
    [result] = engine.apply(transactions("1", order("XYZ", "1", "1")), now=0)
    assert result == Error(
        ErrorCode.UNKNOWN_SYMBOL, (("sym", "XYZ"), ("amount", "1"), ("limit", "1"))
    )


def test_buy_reserves_cost_and_exact_balance_suffices(engine: Exchange) -> None:
    [result] = engine.apply(transactions("3", order("SPY", "8", "125")), now=0)
    assert isinstance(result, Opened)
    assert balance(engine, "3") == D(0)


def test_buy_short_of_funds_is_rejected_and_changes_nothing(engine: Exchange) -> None:
    [result] = engine.apply(transactions("3", order("SPY", "8", "125.01")), now=0)
    assert isinstance(result, Error)
    assert result.code is ErrorCode.INSUFFICIENT_FUNDS
    assert balance(engine, "3") == D(1000)
    assert engine.books["SPY"].bids.best_price() is None


def test_sell_reserves_shares(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-400", "10")), now=0)
    assert position(engine, "2", "SPY") == D(600)


def test_sell_short_of_shares_is_rejected(engine: Exchange) -> None:
    results = engine.apply(
        transactions("2", order("SPY", "-1000.5", "10"), order("SPY", "-1", "10")), now=0
    )
    assert isinstance(results[0], Error)
    assert results[0].code is ErrorCode.INSUFFICIENT_SHARES
    assert isinstance(results[1], Opened)
    assert position(engine, "2", "SPY") == D(999)


def test_sell_without_position_is_rejected(engine: Exchange) -> None:
    [result] = engine.apply(transactions("1", order("SPY", "-1", "10")), now=0)
    assert isinstance(result, Error)
    assert result.code is ErrorCode.INSUFFICIENT_SHARES


def test_results_follow_children_order(engine: Exchange) -> None:
    results = engine.apply(
        transactions(
            "1", order("SPY", "1", "1"), query(1), order("NOPE", "1", "1"), cancel(1), query(99)
        ),
        now=5,
    )
    assert [type(r) for r in results] == [Opened, Status, Error, Canceled, Error]


def test_order_ids_are_sequential_and_never_reused(engine: Exchange) -> None:
    results = engine.apply(
        transactions("1", order("SPY", "1", "1"), order("SPY", "1", "1"), order("X", "1", "1")),
        now=0,
    )
    [again] = engine.apply(transactions("1", order("SPY", "1", "1")), now=0)
    assert [opened_id(results[0]), opened_id(results[1]), opened_id(again)] == [1, 2, 3]


# matching


def test_worked_example_of_the_protocol() -> None:
    engine = Exchange()
    engine.apply(
        create(
            account("100", "1000000"),
            account("200", "0"),
            shares("SYM", "200", "10000"),
        ),
        now=0,
    )
    book = [
        ("100", "300", "125"),
        ("200", "-100", "130"),
        ("100", "200", "127"),
        ("200", "-500", "128"),
        ("200", "-200", "140"),
        ("100", "400", "125"),
    ]
    for who, amount, limit in book:
        [result] = engine.apply(transactions(who, order("SYM", amount, limit)), now=10)
        assert isinstance(result, Opened)
    cash_before = balance(engine, "200")
    [seven] = engine.apply(transactions("200", order("SYM", "-400", "124")), now=20)
    assert opened_id(seven) == 7

    assert status(engine, "100", 1) == OrderState(
        1, D(100), D(0), None, (Execution(D(200), D(125), 20),)
    )
    assert status(engine, "100", 3) == OrderState(
        3, D(0), D(0), None, (Execution(D(200), D(127), 20),)
    )
    assert status(engine, "200", 7) == OrderState(
        7, D(0), D(0), None, (Execution(D(200), D(127), 20), Execution(D(200), D(125), 20))
    )
    assert status(engine, "100", 6).open_shares == D(400)
    assert balance(engine, "200") - cash_before == D(200 * 127 + 200 * 125)
    assert position(engine, "100", "SYM") == D(400)
    assert audit(engine) == []


def test_incoming_buy_executes_at_resting_sell_price_with_refund(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-100", "10")), now=1)
    engine.apply(transactions("1", order("SPY", "100", "12.5")), now=2)
    assert balance(engine, "1") == D(100000) - D(100) * D(10)
    assert balance(engine, "2") == D(1000)
    assert position(engine, "1", "SPY") == D(100)
    assert status(engine, "1", 2).executions == (Execution(D(100), D(10), 2),)


def test_incoming_sell_executes_at_resting_buy_price(engine: Exchange) -> None:
    engine.apply(transactions("1", order("SPY", "100", "12.5")), now=1)
    engine.apply(transactions("2", order("SPY", "-100", "10")), now=2)
    assert balance(engine, "2") == D(1250)
    assert balance(engine, "1") == D(100000) - D(1250)
    assert status(engine, "2", 2).executions == (Execution(D(100), D("12.5"), 2),)


def test_orders_that_do_not_cross_both_rest(engine: Exchange) -> None:
    engine.apply(transactions("1", order("SPY", "10", "9.99")), now=1)
    engine.apply(transactions("2", order("SPY", "-10", "10")), now=2)
    assert status(engine, "1", 1).open_shares == D(10)
    assert status(engine, "2", 2).open_shares == D(10)


def test_time_priority_within_a_price_level(engine: Exchange) -> None:
    engine.apply(create(account("4", "1000")), now=0)
    engine.apply(transactions("3", order("SPY", "5", "10")), now=1)
    engine.apply(transactions("4", order("SPY", "5", "10")), now=2)
    engine.apply(transactions("2", order("SPY", "-7", "10")), now=3)
    assert status(engine, "3", 1).open_shares == D(0)
    assert status(engine, "4", 2).open_shares == D(3)
    assert position(engine, "3", "SPY") == D(5)
    assert position(engine, "4", "SPY") == D(2)


def test_best_price_before_time(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-5", "11")), now=1)
    engine.apply(transactions("2", order("SPY", "-5", "10")), now=2)
    engine.apply(transactions("1", order("SPY", "5", "11")), now=3)
    assert status(engine, "2", 2).open_shares == D(0)
    assert status(engine, "2", 1).open_shares == D(5)


def test_unfilled_part_keeps_its_priority(engine: Exchange) -> None:
    engine.apply(create(account("4", "1000")), now=0)
    engine.apply(transactions("3", order("SPY", "10", "10")), now=1)
    engine.apply(transactions("4", order("SPY", "10", "10")), now=2)
    engine.apply(transactions("2", order("SPY", "-4", "10")), now=3)
    engine.apply(transactions("2", order("SPY", "-4", "10")), now=4)
    assert status(engine, "3", 1).open_shares == D(2)
    assert status(engine, "4", 2).open_shares == D(10)


def test_incoming_order_sweeps_levels_until_limit(engine: Exchange) -> None:
    for limit in ("10", "11", "12", "13"):
        engine.apply(transactions("2", order("SPY", "-10", limit)), now=1)
    engine.apply(transactions("1", order("SPY", "35", "12")), now=2)
    sweep = status(engine, "1", 5)
    assert [(e.shares, e.price) for e in sweep.executions] == [
        (D(10), D(10)),
        (D(10), D(11)),
        (D(10), D(12)),
    ]
    assert sweep.open_shares == D(5)
    assert engine.books["SPY"].bids.best_price() == D(12)
    assert engine.books["SPY"].asks.best_price() == D(13)
    assert balance(engine, "1") == D(100000) - D(330) - D(5 * 12)


def test_partial_fill_then_cancel_refunds_to_the_cent(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-2.5", "10.01")), now=1)
    engine.apply(transactions("1", order("SPY", "7.25", "10.37")), now=2)
    # filled 2.5 @ 10.01, refund 2.5 × 0.36; 4.75 open hold 4.75 × 10.37
    assert balance(engine, "1") == D("100000") - D("25.025") - D("49.2575")
    [result] = engine.apply(transactions("1", cancel(2)), now=3)
    assert result == Canceled(
        OrderState(2, D(0), D("4.75"), 3, (Execution(D("2.5"), D("10.01"), 2),))
    )
    assert balance(engine, "1") == D("99974.975")
    assert balance(engine, "2") == D("25.025")
    assert position(engine, "1", "SPY") == D("2.5")
    assert audit(engine) == []


def test_cancel_sell_returns_shares(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-300", "10")), now=1)
    engine.apply(transactions("2", cancel(1)), now=2)
    assert position(engine, "2", "SPY") == D(1000)


def test_canceled_part_never_matches_again(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-300", "10")), now=1)
    engine.apply(transactions("2", cancel(1)), now=2)
    engine.apply(transactions("1", order("SPY", "300", "10")), now=3)
    assert status(engine, "2", 1).executions == ()
    assert status(engine, "1", 2).open_shares == D(300)


def test_cancel_errors(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-5", "10")), now=1)
    engine.apply(transactions("1", order("SPY", "5", "10")), now=2)
    results = engine.apply(transactions("1", cancel(2), cancel(1), cancel(99)), now=3)
    assert results == [
        Error(ErrorCode.NOTHING_TO_CANCEL, (("id", "2"),)),
        Error(ErrorCode.ORDER_NOT_FOUND, (("id", "1"),)),
        Error(ErrorCode.ORDER_NOT_FOUND, (("id", "99"),)),
    ]


def test_second_cancel_has_nothing_to_cancel(engine: Exchange) -> None:
    engine.apply(transactions("1", order("SPY", "5", "10")), now=1)
    first, second = engine.apply(transactions("1", cancel(1), cancel(1)), now=2)
    assert isinstance(first, Canceled)
    assert second == Error(ErrorCode.NOTHING_TO_CANCEL, (("id", "1"),))
    assert balance(engine, "1") == D(100000)


def test_other_accounts_orders_look_missing(engine: Exchange) -> None:
    engine.apply(transactions("2", order("SPY", "-5", "10")), now=1)
    results = engine.apply(transactions("1", query(1), cancel(1), query(2)), now=2)
    assert [r.code for r in results if isinstance(r, Error)] == [ErrorCode.ORDER_NOT_FOUND] * 3
    assert status(engine, "2", 1).open_shares == D(5)


def test_query_reports_open_canceled_and_executions() -> None:
    engine = Exchange()
    engine.apply(create(account("1", "1000"), account("2", "0"), shares("S", "2", "10")), now=0)
    engine.apply(transactions("1", order("S", "10", "5")), now=100)
    engine.apply(transactions("2", order("S", "-3", "5")), now=200)
    engine.apply(transactions("2", order("S", "-4", "4")), now=300)
    assert status(engine, "1", 1) == OrderState(
        1, D(3), D(0), None, (Execution(D(3), D(5), 200), Execution(D(4), D(5), 300))
    )
    engine.apply(transactions("1", cancel(1)), now=400)
    assert status(engine, "1", 1) == OrderState(
        1, D(0), D(3), 400, (Execution(D(3), D(5), 200), Execution(D(4), D(5), 300))
    )


def test_self_trade_is_allowed_and_conserves_value(engine: Exchange) -> None:
    engine.apply(create(shares("SPY", "1", "10")), now=0)
    engine.apply(transactions("1", order("SPY", "-10", "5"), order("SPY", "10", "6")), now=1)
    assert balance(engine, "1") == D(100000)
    assert position(engine, "1", "SPY") == D(10)
    assert audit(engine) == []


def test_fractional_arithmetic_is_exact() -> None:
    engine = Exchange()
    engine.apply(create(account("1", "1"), account("2", "0"), shares("S", "2", "1")), now=0)
    engine.apply(transactions("2", order("S", "-0.3", "0.1")), now=1)
    engine.apply(transactions("1", order("S", "0.3", "0.3")), now=2)
    assert balance(engine, "2") == D("0.03")
    assert balance(engine, "1") == D("0.97")
    assert audit(engine) == []


# change capture


def test_changes_hold_each_row_once_with_final_values(engine: Exchange) -> None:
    engine.take_changes()
    engine.apply(transactions("2", order("SPY", "-10", "10")), now=1)
    engine.apply(transactions("1", order("SPY", "4", "11"), order("SPY", "4", "11")), now=2)
    changes = engine.take_changes()
    assert changes.symbols == ()
    assert {(a.account_id, a.balance) for a in changes.accounts} == {
        ("1", D(100000) - D(80)),
        ("2", D(80)),
    }
    assert {(p.account_id, p.symbol, p.shares) for p in changes.positions} == {
        ("1", "SPY", D(8)),
        ("2", "SPY", D(990)),
    }
    assert [(o.order_id, o.open_shares) for o in changes.orders] == [
        (1, D(2)),
        (2, D(0)),
        (3, D(0)),
    ]
    assert [(e.order_id, e.execution.shares) for e in changes.executions] == [
        (2, D(4)),
        (1, D(4)),
        (3, D(4)),
        (1, D(4)),
    ]
    assert engine.take_changes().is_empty()


def test_changes_record_new_symbols_and_accounts() -> None:
    engine = Exchange()
    engine.apply(create(account("1", "5"), shares("A", "1", "1"), shares("B", "1", "2")), now=0)
    changes = engine.take_changes()
    assert changes.symbols == ("A", "B")
    assert [(a.account_id, a.balance) for a in changes.accounts] == [("1", D(5))]
    assert len(changes.positions) == 2


def test_rejected_order_changes_nothing(engine: Exchange) -> None:
    engine.take_changes()
    engine.apply(transactions("3", order("SPY", "1000", "1000")), now=1)
    assert engine.take_changes().is_empty()


def test_changes_record_deposits_in_order() -> None:
    engine = Exchange()
    engine.apply(create(account("1", "5"), shares("A", "1", "2"), shares("A", "9", "3")), now=42)
    deposits = engine.take_changes().deposits
    assert [(d.account_id, d.symbol, d.amount, d.time) for d in deposits] == [
        ("1", None, D(5), 42),
        ("1", "A", D(2), 42),
    ]


# -- the cap on open orders per account (docs/security.md) ---------------------


def capped_engine(cap: int) -> Exchange:
    engine = Exchange(max_open_orders=cap)
    engine.apply(create(account("1", "1000"), account("2", "1000"), shares("X", "2", "100")), 0)
    return engine


def place(engine: Exchange, account_id: str, amount: str, limit: str) -> Result:
    (result,) = engine.apply(transactions(account_id, order("X", amount, limit)), 1)
    return result


def test_an_account_at_its_open_order_cap_is_refused_new_orders() -> None:
    engine = capped_engine(2)
    opened_id(place(engine, "1", "1", "1"))
    opened_id(place(engine, "1", "1", "1"))
    refused = place(engine, "1", "1", "1")
    assert refused == Error(
        ErrorCode.TOO_MANY_OPEN_ORDERS, (("sym", "X"), ("amount", "1"), ("limit", "1"))
    )
    assert balance(engine, "1") == D(998)  # the refused order held nothing
    opened_id(place(engine, "2", "-1", "5"))  # other accounts are not affected
    assert audit(engine) == []


def test_cancels_and_fills_free_places_under_the_cap() -> None:
    engine = capped_engine(1)
    first = opened_id(place(engine, "1", "1", "1"))
    assert isinstance(place(engine, "1", "1", "1"), Error)
    engine.apply(transactions("1", cancel(first)), 2)
    resting = opened_id(place(engine, "1", "1", "2"))
    assert isinstance(place(engine, "1", "1", "1"), Error)
    opened_id(place(engine, "2", "-1", "2"))  # fills the resting buy completely
    assert engine.orders[resting].open_shares == 0
    opened_id(place(engine, "1", "1", "1"))
    assert audit(engine) == []


def test_an_order_filled_at_once_never_counts_against_the_cap() -> None:
    engine = capped_engine(1)
    opened_id(place(engine, "2", "-5", "1"))
    opened_id(place(engine, "1", "2", "1"))  # fills at once: nothing rests
    opened_id(place(engine, "1", "3", "1"))  # fills the rest of the sell at once
    opened_id(place(engine, "1", "1", "1"))  # rests: the first open order
    assert isinstance(place(engine, "1", "1", "1"), Error)
    assert audit(engine) == []
