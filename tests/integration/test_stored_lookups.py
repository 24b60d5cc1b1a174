"""Closed orders answered from the tables, against real PostgreSQL.

Random order streams are committed through the store as the server does
and projected; then every closed order is evicted from the engine, and a
query or cancel of any order id, by any account, answered from the tables
must render exactly as the engine answered it from memory. Recovery must
read the open orders only, yet hand out no order id twice.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bourse.bench.workload import WorkloadShape, setup_request, transaction_stream
from bourse.core.commands import Request, TransactionCommand
from bourse.core.digest import state_digest
from bourse.core.exchange import Exchange
from bourse.core.lookup import StoredLookup, answer
from bourse.core.results import Result
from bourse.protocol.render import render_results
from bourse.store import loader
from bourse.store.store import Store
from tests.builders import cancel, order, query, transactions
from tests.databases import fresh_database
from tests.property.test_engine_properties import ACCOUNTS, SEED, requests

pytestmark = pytest.mark.timeout(300)

NOW = 1_700_000_000


async def commit_and_project(store: Store, engine: Exchange, stream: list[Request]) -> None:
    """Each request one batch, committed to the journal; then wait until
    the tables hold them all."""
    await store.migrate()
    _, batch_id = await store.load_exchange()
    for now, request in enumerate([SEED, *stream]):
        engine.apply(request, NOW + now)
        changes = engine.take_changes()
        if not changes.is_empty():
            batch_id += 1
            await store.write(batch_id, 1, changes, lambda session: None)
    await store.projector.drain()


async def committed_then_restored(url: str, stream: list[Request]) -> tuple[Exchange, Exchange]:
    """The engine that ran ``stream``, and the one rebuilt from the tables."""
    store = Store(url)
    try:
        engine = Exchange()
        await commit_and_project(store, engine, stream)
        restored, _ = await store.load_exchange()
        return engine, restored
    finally:
        await store.close()


def lookups(engine: Exchange, accounts: list[str]) -> list[tuple[str, TransactionCommand]]:
    """A query of every id issued and one more, by each of ``accounts``; a
    cancel of every closed order (cancelling an open one would change it)."""
    ids = range(1, engine.next_order_id + 1)
    closed = [i for i in ids if i in engine.orders and not engine.orders[i].open_shares]
    return [
        *((who, query(order_id)) for who in accounts for order_id in ids),
        *((who, cancel(order_id)) for who in accounts for order_id in closed),
    ]


async def compare(store: Store, engine: Exchange, accounts: list[str]) -> int:
    """Assert the tables answer as memory did; how many closed orders."""
    asked = lookups(engine, accounts)
    from_memory = answered_in_memory(engine, asked)
    assert engine.take_changes().is_empty(), "lookups change nothing"
    closed = sum(1 for order in engine.orders.values() if not order.open_shares)
    from_tables, looked_up = await answered_from_tables(store, engine, asked)
    assert looked_up == 2 * len(accounts) * closed, "every closed order was evicted"
    assert from_tables == from_memory
    return closed


def answered_in_memory(engine: Exchange, asked: list[tuple[str, TransactionCommand]]) -> bytes:
    results: list[Result] = []
    for who, command in asked:
        results += engine.apply(transactions(who, command), NOW)
    return render_results(results)


async def answered_from_tables(
    store: Store, engine: Exchange, asked: list[tuple[str, TransactionCommand]]
) -> tuple[bytes, int]:
    """The answers once every closed order is evicted; and how many were
    looked up in the tables."""
    engine.evict(list(engine.orders))
    results: list[Result] = []
    for who, command in asked:
        results += engine.apply(transactions(who, command), NOW)
    waiting = [result for result in results if isinstance(result, StoredLookup)]
    stored = await store.stored_orders({lookup.command.order_id for lookup in waiting})
    answers = [answer(r, stored) if isinstance(r, StoredLookup) else r for r in results]
    return render_results(answers), len(waiting)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(stream=st.lists(requests, min_size=5, max_size=40))
def test_a_closed_order_reads_the_same_from_the_tables(
    cluster_url: str, stream: list[Request]
) -> None:
    async def scenario(url: str) -> None:
        store = Store(url)
        try:
            engine = Exchange()
            await commit_and_project(store, engine, stream)
            await compare(store, engine, ACCOUNTS)
        finally:
            await store.close()

    with fresh_database(cluster_url) as url:
        asyncio.run(scenario(url))


def test_orders_of_many_fills_read_the_same_from_the_tables(database_url: str) -> None:
    """A busy history (orders filled in several parts, canceled after
    fills), asked about by three accounts: each owner and the others."""
    shape = WorkloadShape(accounts=6, symbols=2, requests=800)
    stream: list[Request] = [setup_request(shape), *transaction_stream(shape, seed=3)]

    async def scenario() -> tuple[int, int]:
        store = Store(database_url)
        try:
            engine = Exchange()
            await commit_and_project(store, engine, stream)
            multiple = sum(1 for o in engine.orders.values() if len(o.executions) > 2)
            return await compare(store, engine, sorted(engine.ledger.accounts)[:3]), multiple
        finally:
            await store.close()

    closed, filled_in_parts = asyncio.run(scenario())
    assert closed > 100
    assert filled_in_parts > 10


def test_recovery_reads_the_open_orders_only(database_url: str) -> None:
    """Orders that filled or were canceled stay in the tables: the rebuilt
    exchange holds the open ones, equals the live state, and goes on with
    the next order id."""
    stream: list[Request] = [
        transactions("1", order("A", "1", "2")),
        transactions("2", order("A", "-1", "2")),  # fills order 1: both closed
        transactions("1", order("A", "1", "1")),
        transactions("1", cancel(3)),  # closed by its cancel
        transactions("3", order("A", "1", "1.5")),  # stays open
        transactions("4", order("A", "-1", "3")),  # stays open, above the bid
    ]

    engine, restored = asyncio.run(committed_then_restored(database_url, stream))
    assert sorted(restored.orders) == [4, 5]
    assert restored.next_order_id == engine.next_order_id == 6
    assert state_digest(restored) == state_digest(engine)
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT count(*) FROM orders WHERE open_shares = 0").fetchone()
    assert row == (3,)


@pytest.mark.parametrize("scan_chunks", [0, 4])
def test_recent_trades_read_back_whichever_way(
    database_url: str, scan_chunks: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recent trades the market data starts from are the same whether
    read from the newest executions back or, for symbols still short of
    them, through their orders (no chunk read first: every symbol so)."""
    monkeypatch.setattr(loader, "SCAN_CHUNKS", scan_chunks)
    shape = WorkloadShape(accounts=6, symbols=3, requests=600)
    stream: list[Request] = [setup_request(shape), *transaction_stream(shape, seed=5)]

    engine, restored = asyncio.run(committed_then_restored(database_url, stream))
    traded = [state.trades for state in engine.market_snapshot().symbols]
    assert sum(1 for trades in traded if len(trades) > 10) >= 2
    assert state_digest(restored) == state_digest(engine)
