"""The budget of fills one request may report, and fill-history snapshots.

A ``<query>`` or ``<cancel>`` answers with one ``<executed>`` per fill of
its order, so without a budget one small request naming a long-lived order
many times would make the server render an unbounded reply.
"""

from __future__ import annotations

import pickle
from decimal import Decimal

from bourse.core.errors import ErrorCode
from bourse.core.exchange import Exchange
from bourse.core.results import Canceled, Error, Execution, FillHistory, Result, Status
from tests.builders import account, cancel, create, order, query, shares, transactions

BUYER, SELLER = "1", "2"


def engine_with_filled_order(fills: int, budget: int | None) -> Exchange:
    """Order 1 is a buy of ``fills + 1`` shares at 10 that rested and was
    filled ``fills`` times, one share per sell; one share is still open."""
    engine = Exchange(max_reply_fills=budget)
    engine.apply(
        create(account(BUYER, "1000000"), account(SELLER, "0"), shares("X", SELLER, "1000000")),
        0,
    )
    engine.apply(transactions(BUYER, order("X", str(fills + 1), "10")), 1)
    for _ in range(fills):
        engine.apply(transactions(SELLER, order("X", "-1", "10")), 2)
    return engine


def reported_fills(results: list[Result]) -> int:
    return sum(
        len(result.state.executions) for result in results if isinstance(result, Status | Canceled)
    )


def test_queries_past_the_budget_get_an_error_in_their_place() -> None:
    engine = engine_with_filled_order(fills=40, budget=100)
    results = engine.apply(transactions(BUYER, *[query(1)] * 5), 3)
    assert [type(result) for result in results] == [Status, Status, Error, Error, Error]
    assert all(
        result.code is ErrorCode.REPLY_TOO_LARGE and result.echo == (("id", "1"),)
        for result in results[2:]
        if isinstance(result, Error)
    )
    assert reported_fills(results) == 80


def test_the_first_order_to_report_fills_is_answered_whatever_its_history() -> None:
    engine = engine_with_filled_order(fills=30, budget=10)
    status, refused = engine.apply(transactions(BUYER, query(1), query(1)), 3)
    assert isinstance(status, Status)
    assert len(status.state.executions) == 30
    assert isinstance(refused, Error)
    assert refused.code is ErrorCode.REPLY_TOO_LARGE


def test_orders_and_fill_free_answers_are_not_counted() -> None:
    engine = engine_with_filled_order(fills=10, budget=10)
    results = engine.apply(
        transactions(BUYER, query(99), order("X", "1", "1"), query(1), query(99), query(1)), 3
    )
    assert [type(result) for result in results] == [Error, type(results[1]), Status, Error, Error]
    assert isinstance(results[3], Error)
    assert results[3].code is ErrorCode.ORDER_NOT_FOUND
    assert isinstance(results[4], Error)
    assert results[4].code is ErrorCode.REPLY_TOO_LARGE


def test_a_cancel_past_the_budget_is_not_carried_out() -> None:
    engine = engine_with_filled_order(fills=20, budget=25)
    before = engine.ledger.accounts[BUYER].balance
    query_result, cancel_result = engine.apply(transactions(BUYER, query(1), cancel(1)), 3)
    assert isinstance(query_result, Status)
    assert isinstance(cancel_result, Error)
    assert cancel_result.code is ErrorCode.REPLY_TOO_LARGE
    assert engine.orders[1].open_shares == 1
    assert engine.ledger.accounts[BUYER].balance == before
    (canceled,) = engine.apply(transactions(BUYER, cancel(1)), 4)
    assert isinstance(canceled, Canceled)
    assert len(canceled.state.executions) == 20
    assert engine.orders[1].open_shares == 0


def test_without_a_budget_every_query_is_answered() -> None:
    engine = engine_with_filled_order(fills=30, budget=None)
    results = engine.apply(transactions(BUYER, *[query(1)] * 10), 3)
    assert all(isinstance(result, Status) for result in results)
    assert reported_fills(results) == 300


def test_a_status_keeps_the_history_of_its_moment() -> None:
    engine = engine_with_filled_order(fills=2, budget=None)
    (status,) = engine.apply(transactions(BUYER, query(1)), 3)
    engine.apply(transactions(SELLER, order("X", "-1", "10")), 4)
    assert isinstance(status, Status)
    assert len(status.state.executions) == 2
    assert [execution.time for execution in status.state.executions] == [2, 2]
    assert len(engine.orders[1].executions) == 3


def test_a_fill_history_compares_and_pickles_as_its_fills() -> None:
    fills = [Execution(Decimal(1), Decimal(10), time) for time in range(3)]
    history = FillHistory(fills, 2)
    assert history == tuple(fills[:2])
    assert tuple(fills[:2]) == history
    assert history != tuple(fills)
    assert history[-1] is fills[1]
    assert list(history[0:5]) == fills[:2]
    copy = pickle.loads(pickle.dumps(history))
    assert list(copy) == fills[:2]
    fills.append(Execution(Decimal(2), Decimal(10), 9))
    assert len(history) == 2
