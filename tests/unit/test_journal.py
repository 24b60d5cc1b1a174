"""The journal row's encoding, and how a backlog is cut into windows.

Change sets come from the real engine on random request streams: the JSON
of a batch must hold every row exactly (money as the very decimal text,
not a float), in the layout the projection's SQL reads. That the SQL
writes the same tables from it is checked against PostgreSQL in
``tests/integration/test_projection.py``.
"""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.core.changes import ChangeSet
from bourse.core.commands import Request
from bourse.core.exchange import Exchange
from bourse.store.journal_codec import VERSION, encode
from bourse.store.projection import windows
from tests.builders import account, create, order, shares, transactions
from tests.property.test_engine_properties import SEED, requests


def cut_batches(stream: list[Request], group: int) -> list[ChangeSet]:
    """The engine's change sets, cut every ``group`` requests of ``stream``."""
    engine = Exchange()
    chunks: list[list[Request]] = [[SEED]]
    chunks += (stream[i : i + group] for i in range(0, len(stream), group))
    cut = []
    for now, chunk in enumerate(chunks):
        for request in chunk:
            engine.apply(request, now)
        cut.append(engine.take_changes())
    return cut


def decoded(changes: ChangeSet) -> dict[str, list[list[object]]]:
    row = json.loads(encode(changes), parse_float=Decimal)
    assert row.pop("v") == VERSION
    return {key: [list(item) for item in value] for key, value in row.items()}


def expected(changes: ChangeSet) -> dict[str, list[list[object]]]:
    """The rows as the projection must read them, decimals as their text."""
    symbols = dict.fromkeys(changes.symbols, 0)
    symbols.update((row.symbol, row.seq) for row in changes.sequences)
    return {
        "s": [[symbol, seq] for symbol, seq in symbols.items()],
        "a": [[r.account_id, str(r.balance)] for r in changes.accounts],
        "p": [[r.account_id, r.symbol, str(r.shares)] for r in changes.positions],
        "o": [
            [
                r.order_id,
                r.account_id,
                r.symbol,
                str(r.amount),
                str(r.limit_price),
                str(r.open_shares),
                str(r.canceled_shares),
                r.canceled_at,
                r.created_at,
            ]
            for r in changes.orders
        ],
        "e": [
            [r.order_id, str(r.execution.shares), str(r.execution.price), r.execution.time]
            for r in changes.executions
        ],
        "d": [[r.account_id, r.symbol, str(r.amount), r.time] for r in changes.deposits],
    }


@settings(max_examples=100, deadline=None)
@given(st.lists(requests, max_size=40), st.integers(min_value=1, max_value=6))
def test_every_row_of_a_batch_is_in_its_journal_row(stream: list[Request], group: int) -> None:
    for changes in cut_batches(stream, group):
        assert decoded(changes) == expected(changes)


def test_money_keeps_its_exact_digits() -> None:
    """Decimals travel as text that reads back to the very same number
    (PostgreSQL's numeric input reads exponents too)."""
    engine = Exchange()
    engine.apply(create(account("1", "1000.10"), shares("S", "1", "0.000000001")), 1)
    engine.apply(transactions("1", order("S", "-0.000000001", "123456789.123456789")), 2)
    row = json.loads(encode(engine.take_changes()))
    assert row["a"] == [["1", "1000.10"]]
    amount, limit = row["o"][0][3:5]
    assert Decimal(amount) == Decimal("-0.000000001")
    assert limit == "123456789.123456789"
    assert row["s"] == [["S", 1]]


def test_a_backlog_is_cut_at_the_row_bound() -> None:
    sizes = [(5, 10), (6, 30), (7, 5), (8, 100), (9, 1), (10, 1)]
    assert windows(sizes, max_rows=40) == [(5, 6), (7, 8), (9, 10)]
    assert windows(sizes, max_rows=1) == [(b, b) for b, _ in sizes]
    assert windows(sizes, max_rows=10**6) == [(5, 10)]
    assert windows([], max_rows=40) == []
