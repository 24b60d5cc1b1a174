"""The store against real PostgreSQL: batches written, the exchange read back.

Runs against both clusters (embedded and external). Random request streams
go through the real engine; the change set cut after each request (or
after groups of requests) is written as one batch; reading the database
back and rebuilding must give an engine with the same state digest, and
the invariants must hold in SQL.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bourse.bench.workload import WorkloadShape, setup_request, transaction_stream
from bourse.core.commands import Request
from bourse.core.digest import state_digest
from bourse.core.exchange import Exchange
from bourse.core.market import MarketSnapshot, SymbolState, Trade
from bourse.store.store import Store
from tests.property.test_engine_properties import SEED, requests

pytestmark = pytest.mark.timeout(600)


T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def _commit_all(store: Store, engine: Exchange, batches: list[list[Request]]) -> int:
    """Apply and commit each group of requests as one batch; the last batch id."""
    batch_id = 0
    now = 1_700_000_000
    for batch in batches:
        for request in batch:
            now += 1
            engine.apply(request, now)
        changes = engine.take_changes()
        if changes.is_empty():
            continue
        batch_id += 1
        await store.write(batch_id, len(batch), changes, lambda pid: None)
    return batch_id


async def _round_trip(
    url: str, batches: list[list[Request]]
) -> tuple[Exchange, Exchange, list[str]]:
    store = Store(url)
    try:
        await store.migrate()
        engine = Exchange()
        last = await _commit_all(store, engine, batches)
        restored, last_loaded = await store.load_exchange()
        assert last_loaded == last
        return engine, restored, await store.audit()
    finally:
        await store.close()


@pytest.fixture
def workload() -> list[list[Request]]:
    shape = WorkloadShape(accounts=50, symbols=3, requests=1500)
    stream: list[Request] = list(transaction_stream(shape, seed=3))
    return [[setup_request(shape)], *(stream[i : i + 7] for i in range(0, len(stream), 7))]


def test_written_batches_read_back_to_the_same_state(
    database_url: str, workload: list[list[Request]]
) -> None:
    engine, restored, problems = run(_round_trip(database_url, workload))
    assert state_digest(restored) == state_digest(engine)
    assert problems == []
    assert len(engine.orders) > 1000


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(stream=st.lists(requests, max_size=30), group=st.integers(min_value=1, max_value=5))
def test_random_streams_survive_the_round_trip(
    cluster_url: str, stream: list[Request], group: int
) -> None:
    from tests.databases import fresh_database

    batches: list[list[Request]] = [[SEED]]
    batches += [stream[i : i + group] for i in range(0, len(stream), group)]
    with fresh_database(cluster_url) as url:
        engine, restored, problems = run(_round_trip(url, batches))
    assert state_digest(restored) == state_digest(engine)
    assert problems == []


def _unnumbered(snapshot: MarketSnapshot) -> MarketSnapshot:
    """``snapshot`` with its trades' own ``seq`` dropped (it is not stored)."""
    return MarketSnapshot(
        tuple(
            SymbolState(
                state.symbol,
                state.seq,
                state.bids,
                state.asks,
                tuple(Trade(t.symbol, 0, t.price, t.shares, t.time) for t in state.trades),
            )
            for state in snapshot.symbols
        )
    )


def test_market_seq_levels_and_recent_trades_survive_the_round_trip(
    database_url: str, workload: list[list[Request]]
) -> None:
    engine, restored, _ = run(_round_trip(database_url, workload))
    published = engine.market_snapshot()
    assert restored.market_snapshot() == _unnumbered(published)
    assert all(state.seq > 100 and len(state.trades) > 100 for state in published.symbols)
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT symbol, market_seq FROM symbols").fetchall()
    stored: dict[str, int] = dict(rows)
    assert stored == {state.symbol: state.seq for state in published.symbols}


def test_the_cut_writes_values_at_the_cut(database_url: str) -> None:
    """Changes made after a cut belong to the next batch, never to the cut one."""

    async def scenario() -> Decimal:
        store = Store(database_url)
        try:
            await store.migrate()
            engine = Exchange()
            await _commit_all(store, engine, [[SEED]])
            changes = engine.take_changes()
            assert changes.is_empty()
            from tests.builders import order, transactions

            engine.apply(transactions("1", order("A", "10", "2")), 5)
            cut = engine.take_changes()
            engine.apply(transactions("1", order("A", "10", "3")), 6)
            await store.write(2, 1, cut, lambda pid: None)
            stored, _ = await store.load_exchange()
            return stored.ledger.accounts["1"].balance
        finally:
            await store.close()

    assert run(scenario()) == Decimal(80)


def test_check_constraints_refuse_nan_and_negatives(database_url: str) -> None:
    async def migrate() -> None:
        store = Store(database_url)
        try:
            await store.migrate()
        finally:
            await store.close()

    run(migrate())
    with psycopg.connect(database_url, autocommit=True) as connection:
        for value in ("'NaN'", "-1"):
            with pytest.raises(psycopg.errors.CheckViolation):
                connection.execute(f"INSERT INTO accounts (id, balance) VALUES ('x', {value})")
        connection.execute("INSERT INTO accounts (id, balance) VALUES ('x', 0)")


def test_migrations_are_idempotent(database_url: str) -> None:
    async def twice() -> None:
        store = Store(database_url)
        try:
            await store.migrate()
            await store.migrate()
        finally:
            await store.close()

    run(twice())
    with psycopg.connect(database_url) as connection:
        tables = {
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
    expected = {"accounts", "symbols", "positions", "orders", "executions", "deposits", "batches"}
    assert expected <= tables


def test_db_upgrade_command_creates_the_schema(database_url: str) -> None:
    bourse = Path(sys.executable).with_name("bourse")
    done = subprocess.run(
        [str(bourse), "db", "upgrade", "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with psycopg.connect(database_url) as connection:
        version = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == ("0004",)
