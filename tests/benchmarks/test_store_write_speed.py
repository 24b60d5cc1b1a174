"""How fast the store commits one batch of changes, by strategy and driver.

The batches are real: the engine applies a generated stream (1,000
accounts, 10 symbols, orders around a drifting mid so many fill, plus
queries and cancels) and ``take_changes`` is cut every ``size`` requests,
after the setup batch (every account and position) has been written. Three
ways of writing a ``ChangeSet`` in one transaction are compared, each with
asyncpg and with psycopg 3 (both through SQLAlchemy's async engine, as the
store uses it, one pooled connection checked out per batch):

- ``executemany``: one ``INSERT … VALUES … ON CONFLICT`` per table, executed
  for every row (``connection.execute(statement, list_of_dicts)``);
- ``statement``: the store's own path: the batch's journal row
  (``BatchWriter``), then its projection as a window of one batch: one
  statement of data-modifying CTEs, one ``INSERT … SELECT … FROM
  unnest(arrays) … ON CONFLICT`` per table, on a dedicated asyncpg session
  (asyncpg only);
- ``copy``: binary COPY of the upserted rows into temporary tables (made
  once per connection, ``ON COMMIT DELETE ROWS``) then one
  ``INSERT … SELECT … ON CONFLICT`` per table from them; the insert-only
  ``executions`` and ``deposits`` are copied straight into place.

After the timed writes the database must hold exactly the engine's state
(balances, positions, orders, fills), so a fast wrong strategy cannot pass.
The database is the external server named by ``BOURSE_TEST_DATABASE_URL``;
the tests skip without it. The suite runs each benchmark once
(``--benchmark-disable``); for timings run
``.venv/bin/pytest tests/benchmarks/test_store_write_speed.py --benchmark-enable``.
The figures in docs/storage-writes.md come from the sweep in ``main``
(every batch size, strategies alternated, several repetitions):
``.venv/bin/python -m tests.benchmarks.test_store_write_speed``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import uvloop
from pytest_benchmark.fixture import BenchmarkFixture
from sqlalchemy import TextClause, make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bourse.bench.workload import WorkloadShape, setup_request, transaction_stream
from bourse.core.changes import ChangeSet
from bourse.core.exchange import Exchange
from bourse.store.database import CONNECT_TIMEOUT, connection_pool, migrate
from bourse.store.fence import SessionId
from bourse.store.projection import project
from bourse.store.writer import BatchWriter
from tests.databases import EXTERNAL_URL_VARIABLE, external_url, fresh_database

SHAPE = WorkloadShape()

#: The clock of the generated exchange: one request per second from here.
START = 1_767_225_600

# -- batches cut from the real engine ------------------------------------


@dataclass(frozen=True, slots=True)
class Batch:
    """One group commit: the changes of ``requests`` consecutive requests."""

    requests: int
    changes: ChangeSet

    @property
    def rows(self) -> int:
        """Rows written, not counting the ``batches`` bookkeeping row."""
        return self.changes.row_count()


class BatchedStream:
    """An exchange fed a generated stream, cut into batches of ``size`` requests.

    ``setup`` is the first batch (every account and its shares); each
    ``next_batch`` applies the next requests and cuts their changes.
    """

    def __init__(self, size: int, batches: int) -> None:
        self.exchange = Exchange()
        self.exchange.apply(setup_request(SHAPE), now=START)
        self.setup = Batch(1, self.exchange.take_changes())
        self.size = size
        self.deposits = len(self.setup.changes.deposits)
        stream = transaction_stream(replace(SHAPE, requests=size * batches), seed=7)
        self._requests = iter(stream)
        self._now = START

    def next_batch(self) -> Batch:
        """The changes of the next ``size`` requests."""
        apply = self.exchange.apply
        for request in itertools.islice(self._requests, self.size):
            self._now += 1
            apply(request, self._now)
        changes = self.exchange.take_changes()
        self.deposits += len(changes.deposits)
        return Batch(self.size, changes)


# -- what the database must hold -----------------------------------------


@dataclass(slots=True)
class State:
    """What a database holds, in the terms the engine can be compared in."""

    batches: int
    accounts: dict[str, Decimal]
    positions: dict[tuple[str, str], Decimal]
    orders: dict[int, tuple[Decimal, Decimal, int | None]]
    fills: dict[int, tuple[int, Decimal]]
    deposits: int
    latest: tuple[int | None, int | None]
    """The newest order's creation and the newest fill, in epoch seconds."""


def expected_state(stream: BatchedStream, batches: int) -> State:
    """The engine's state, which ``batches`` committed batches must equal."""
    accounts = stream.exchange.ledger.accounts.values()
    orders = stream.exchange.orders.values()
    return State(
        batches=batches,
        accounts={account.account_id: account.balance for account in accounts},
        positions={
            (account.account_id, symbol): shares
            for account in accounts
            for symbol, shares in account.positions.items()
        },
        orders={
            order.order_id: (order.open_shares, order.canceled_shares, order.canceled_at)
            for order in orders
        },
        fills={
            order.order_id: (
                len(order.executions),
                sum((execution.shares for execution in order.executions), Decimal(0)),
            )
            for order in orders
            if order.executions
        },
        deposits=stream.deposits,
        latest=(
            max((order.created_at for order in orders), default=None),
            max(
                (execution.time for order in orders for execution in order.executions),
                default=None,
            ),
        ),
    )


def stored_state(url: str) -> State:
    """What the database at ``url`` holds."""
    with psycopg.connect(url) as connection:
        return State(
            batches=_scalar(connection, "SELECT count(*) FROM batches"),
            accounts=dict(connection.execute("SELECT id, balance FROM accounts").fetchall()),
            positions={
                (account_id, symbol): shares
                for account_id, symbol, shares in connection.execute(
                    "SELECT account_id, symbol, shares FROM positions"
                )
            },
            orders={
                order_id: (open_shares, canceled_shares, canceled_at)
                for order_id, open_shares, canceled_shares, canceled_at in connection.execute(
                    "SELECT id, open_shares, canceled_shares, "
                    "extract(epoch FROM canceled_at)::bigint FROM orders"
                )
            },
            fills={
                order_id: (count, shares)
                for order_id, count, shares in connection.execute(
                    "SELECT order_id, count(*), sum(shares) FROM executions GROUP BY order_id"
                )
            },
            deposits=_scalar(connection, "SELECT count(*) FROM deposits"),
            latest=(
                _scalar(
                    connection, "SELECT extract(epoch FROM max(created_at))::bigint FROM orders"
                ),
                _scalar(
                    connection,
                    "SELECT extract(epoch FROM max(executed_at))::bigint FROM executions",
                ),
            ),
        )


def _scalar(connection: psycopg.Connection[Any], query: str) -> Any:
    row = connection.execute(query).fetchone()
    assert row is not None
    return row[0]


# -- the strategies --------------------------------------------------------

#: SQLAlchemy driver names, for the URL.
DRIVERS = {"asyncpg": "postgresql+asyncpg", "psycopg": "postgresql+psycopg_async"}

WriteBatch = Callable[[AsyncEngine, int, Batch], Coroutine[Any, Any, None]]

_INSERT_BATCH = text("INSERT INTO batches (id, requests) VALUES (:batch, :requests)")


def open_engine(url: str, driver: str) -> AsyncEngine:
    """An engine like the store's (``connection_pool``), with ``driver``."""
    if driver == "asyncpg":
        return connection_pool(url)
    return create_async_engine(
        make_url(url).set(drivername=DRIVERS[driver]),
        pool_size=4,
        pool_pre_ping=True,
        connect_args={"connect_timeout": int(CONNECT_TIMEOUT)},
    )


def _statement_sent(session: SessionId) -> None:
    """No client waits on a benchmark batch."""


_WRITERS: dict[int, BatchWriter] = {}


async def write_statement(database: AsyncEngine, batch_id: int, batch: Batch) -> None:
    """The store's own path on a dedicated asyncpg session: the journal row,
    then the tables from it."""
    writer = _WRITERS.setdefault(id(database), BatchWriter(database))
    await writer.write(batch_id, batch.requests, batch.changes, _statement_sent)
    session, _ = await writer.open_session()
    await project(session, batch_id, batch_id)


_EXECUTEMANY_SYMBOLS = text("INSERT INTO symbols (symbol) VALUES (:symbol) ON CONFLICT DO NOTHING")
_EXECUTEMANY_ACCOUNTS = text(
    "INSERT INTO accounts (id, balance) VALUES (:id, :balance) "
    "ON CONFLICT (id) DO UPDATE SET balance = EXCLUDED.balance"
)
_EXECUTEMANY_POSITIONS = text(
    "INSERT INTO positions (account_id, symbol, shares) VALUES (:account, :symbol, :shares) "
    "ON CONFLICT (account_id, symbol) DO UPDATE SET shares = EXCLUDED.shares"
)
_EXECUTEMANY_ORDERS = text(
    "INSERT INTO orders (id, account_id, symbol, amount, limit_price, open_shares, "
    "canceled_shares, canceled_at, created_at, batch_id) "
    "VALUES (:id, :account, :symbol, :amount, :limit, :open, :canceled, "
    "to_timestamp(CAST(:canceled_at AS bigint)), to_timestamp(CAST(:created_at AS bigint)), "
    ":batch) "
    "ON CONFLICT (id) DO UPDATE SET open_shares = EXCLUDED.open_shares, "
    "canceled_shares = EXCLUDED.canceled_shares, canceled_at = EXCLUDED.canceled_at"
)
_EXECUTEMANY_EXECUTIONS = text(
    "INSERT INTO executions (order_id, shares, price, executed_at, batch_id) "
    "VALUES (:order, :shares, :price, to_timestamp(CAST(:time AS bigint)), :batch)"
)
_EXECUTEMANY_DEPOSITS = text(
    "INSERT INTO deposits (account_id, symbol, amount, deposited_at, batch_id) "
    "VALUES (:account, :symbol, :amount, to_timestamp(CAST(:time AS bigint)), :batch)"
)


def _executemany_rows(
    batch_id: int, changes: ChangeSet
) -> list[tuple[TextClause, list[dict[str, Any]]]]:
    """Each table's statement and its rows as parameter dictionaries."""
    return [
        (_EXECUTEMANY_SYMBOLS, [{"symbol": symbol} for symbol in changes.symbols]),
        (
            _EXECUTEMANY_ACCOUNTS,
            [{"id": row.account_id, "balance": row.balance} for row in changes.accounts],
        ),
        (
            _EXECUTEMANY_POSITIONS,
            [
                {"account": row.account_id, "symbol": row.symbol, "shares": row.shares}
                for row in changes.positions
            ],
        ),
        (
            _EXECUTEMANY_ORDERS,
            [
                {
                    "id": row.order_id,
                    "account": row.account_id,
                    "symbol": row.symbol,
                    "amount": row.amount,
                    "limit": row.limit_price,
                    "open": row.open_shares,
                    "canceled": row.canceled_shares,
                    "canceled_at": row.canceled_at,
                    "created_at": row.created_at,
                    "batch": batch_id,
                }
                for row in changes.orders
            ],
        ),
        (
            _EXECUTEMANY_EXECUTIONS,
            [
                {
                    "order": row.order_id,
                    "shares": row.execution.shares,
                    "price": row.execution.price,
                    "time": row.execution.time,
                    "batch": batch_id,
                }
                for row in changes.executions
            ],
        ),
        (
            _EXECUTEMANY_DEPOSITS,
            [
                {
                    "account": row.account_id,
                    "symbol": row.symbol,
                    "amount": row.amount,
                    "time": row.time,
                    "batch": batch_id,
                }
                for row in changes.deposits
            ],
        ),
    ]


async def write_executemany(database: AsyncEngine, batch_id: int, batch: Batch) -> None:
    """One parameterised statement per row, sent as one executemany per table."""
    async with database.connect() as connection, connection.begin():
        await connection.execute(_INSERT_BATCH, {"batch": batch_id, "requests": batch.requests})
        for statement, rows in _executemany_rows(batch_id, batch.changes):
            if rows:
                await connection.execute(statement, rows)


@dataclass(frozen=True, slots=True)
class CopyTarget:
    """A table COPY writes into: its columns and their types (psycopg's
    binary COPY needs the types; asyncpg looks them up itself)."""

    table: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    statement: str = field(init=False)

    def __post_init__(self) -> None:
        columns = ", ".join(self.columns)
        statement = f"COPY {self.table} ({columns}) FROM STDIN (FORMAT BINARY)"
        object.__setattr__(self, "statement", statement)


_COPY_SYMBOLS = CopyTarget("copy_symbols", ("symbol",), ("text",))
_COPY_ACCOUNTS = CopyTarget("copy_accounts", ("id", "balance"), ("text", "numeric"))
_COPY_POSITIONS = CopyTarget(
    "copy_positions", ("account_id", "symbol", "shares"), ("text", "text", "numeric")
)
_COPY_ORDERS = CopyTarget(
    "copy_orders",
    (
        "id",
        "account_id",
        "symbol",
        "amount",
        "limit_price",
        "open_shares",
        "canceled_shares",
        "canceled_at",
        "created_at",
    ),
    ("int8", "text", "text", "numeric", "numeric", "numeric", "numeric", "int8", "int8"),
)
_COPY_EXECUTIONS = CopyTarget(
    "executions",
    ("order_id", "shares", "price", "executed_at", "batch_id"),
    ("int8", "numeric", "numeric", "timestamptz", "int8"),
)
_COPY_DEPOSITS = CopyTarget(
    "deposits",
    ("account_id", "symbol", "amount", "deposited_at", "batch_id"),
    ("text", "text", "numeric", "timestamptz", "int8"),
)

#: The staging tables, made once per connection and emptied by every commit.
_CREATE_STAGING = (
    "CREATE TEMPORARY TABLE copy_symbols (symbol text) ON COMMIT DELETE ROWS",
    "CREATE TEMPORARY TABLE copy_accounts (id text, balance numeric) ON COMMIT DELETE ROWS",
    "CREATE TEMPORARY TABLE copy_positions (account_id text, symbol text, shares numeric) "
    "ON COMMIT DELETE ROWS",
    "CREATE TEMPORARY TABLE copy_orders (id bigint, account_id text, symbol text, "
    "amount numeric, limit_price numeric, open_shares numeric, canceled_shares numeric, "
    "canceled_at bigint, created_at bigint) ON COMMIT DELETE ROWS",
)
_STAGING_READY = "bourse.copy_staging"

_MERGE_SYMBOLS = text(
    "INSERT INTO symbols (symbol) SELECT symbol FROM copy_symbols ON CONFLICT DO NOTHING"
)
_MERGE_ACCOUNTS = text(
    "INSERT INTO accounts (id, balance) SELECT id, balance FROM copy_accounts "
    "ON CONFLICT (id) DO UPDATE SET balance = EXCLUDED.balance"
)
_MERGE_POSITIONS = text(
    "INSERT INTO positions (account_id, symbol, shares) "
    "SELECT account_id, symbol, shares FROM copy_positions "
    "ON CONFLICT (account_id, symbol) DO UPDATE SET shares = EXCLUDED.shares"
)
_MERGE_ORDERS = text(
    "INSERT INTO orders (id, account_id, symbol, amount, limit_price, open_shares, "
    "canceled_shares, canceled_at, created_at, batch_id) "
    "SELECT id, account_id, symbol, amount, limit_price, open_shares, canceled_shares, "
    "to_timestamp(canceled_at), to_timestamp(created_at), :batch FROM copy_orders "
    "ON CONFLICT (id) DO UPDATE SET open_shares = EXCLUDED.open_shares, "
    "canceled_shares = EXCLUDED.canceled_shares, canceled_at = EXCLUDED.canceled_at"
)


async def _prepare_staging(connection: AsyncConnection) -> None:
    """Create the staging tables on this pooled connection, once."""
    if connection.info.get(_STAGING_READY):
        return
    for statement in _CREATE_STAGING:
        await connection.exec_driver_sql(statement)
    await connection.commit()
    connection.info[_STAGING_READY] = True


async def copy_rows(
    connection: AsyncConnection, target: CopyTarget, rows: Sequence[tuple[object, ...]]
) -> None:
    """Binary COPY of ``rows`` into ``target``, inside the open transaction."""
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    if connection.dialect.driver == "asyncpg":
        await driver.copy_records_to_table(target.table, records=rows, columns=target.columns)
        return
    async with driver.cursor() as cursor, cursor.copy(target.statement) as copy:
        copy.set_types(target.types)
        for row in rows:
            await copy.write_row(row)


def _timestamp(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _copy_rows(
    batch_id: int, changes: ChangeSet
) -> list[tuple[CopyTarget, list[tuple[object, ...]], TextClause | None]]:
    """Each table's COPY target, its rows, and the merge that follows (None
    when the rows are copied straight into place)."""
    return [
        (_COPY_SYMBOLS, [(symbol,) for symbol in changes.symbols], _MERGE_SYMBOLS),
        (
            _COPY_ACCOUNTS,
            [(row.account_id, row.balance) for row in changes.accounts],
            _MERGE_ACCOUNTS,
        ),
        (
            _COPY_POSITIONS,
            [(row.account_id, row.symbol, row.shares) for row in changes.positions],
            _MERGE_POSITIONS,
        ),
        (
            _COPY_ORDERS,
            [
                (
                    row.order_id,
                    row.account_id,
                    row.symbol,
                    row.amount,
                    row.limit_price,
                    row.open_shares,
                    row.canceled_shares,
                    row.canceled_at,
                    row.created_at,
                )
                for row in changes.orders
            ],
            _MERGE_ORDERS,
        ),
        (
            _COPY_EXECUTIONS,
            [
                (
                    row.order_id,
                    row.execution.shares,
                    row.execution.price,
                    _timestamp(row.execution.time),
                    batch_id,
                )
                for row in changes.executions
            ],
            None,
        ),
        (
            _COPY_DEPOSITS,
            [
                (row.account_id, row.symbol, row.amount, _timestamp(row.time), batch_id)
                for row in changes.deposits
            ],
            None,
        ),
    ]


async def write_copy(database: AsyncEngine, batch_id: int, batch: Batch) -> None:
    """COPY into staging tables, then merge each into place with one statement."""
    async with database.connect() as connection:
        await _prepare_staging(connection)
        async with connection.begin():
            await connection.execute(_INSERT_BATCH, {"batch": batch_id, "requests": batch.requests})
            for target, rows, merge in _copy_rows(batch_id, batch.changes):
                if rows:
                    await copy_rows(connection, target, rows)
                    if merge is not None:
                        await connection.execute(merge, {"batch": batch_id})


async def release(database: AsyncEngine) -> None:
    """Close the store writer's session, if any, then the engine's pool."""
    writer = _WRITERS.pop(id(database), None)
    if writer is not None:
        await writer.close()
    await database.dispose()


STRATEGIES: dict[str, WriteBatch] = {
    "executemany": write_executemany,
    "statement": write_statement,
    "copy": write_copy,
}


@dataclass(frozen=True, slots=True)
class Case:
    """One strategy with one driver."""

    strategy: str
    driver: str

    @property
    def write(self) -> WriteBatch:
        """The strategy's batch writer."""
        return STRATEGIES[self.strategy]

    def __str__(self) -> str:
        return f"{self.strategy}/{self.driver}"


#: The store's writer uses asyncpg's own connection, so it has no psycopg case.
CASES = [
    Case(strategy, driver)
    for strategy in STRATEGIES
    for driver in DRIVERS
    if (strategy, driver) != ("statement", "psycopg")
]


async def open_written(url: str, case: Case, setup: Batch) -> AsyncEngine:
    """An engine for ``case`` on the migrated database at ``url``, with the
    setup batch (batch 1) already written through the case's strategy."""
    admin = connection_pool(url)
    try:
        await migrate(admin)
    finally:
        await admin.dispose()
    database = open_engine(url, case.driver)
    await case.write(database, 1, setup)
    return database


def event_loop_runner() -> asyncio.Runner:
    """The server's event loop (uvloop), for driving the writers."""
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


# -- pytest-benchmark: each round commits one batch ----------------------

#: Rounds (batches committed) per benchmark, by batch size in requests.
ROUNDS = {10: 200, 1000: 20}


@pytest.fixture
def external_database() -> Iterator[str]:
    """A fresh database on the external server; skip without one."""
    admin_url = external_url()
    if admin_url is None:
        pytest.skip(
            f"store write benchmarks need an external PostgreSQL: set {EXTERNAL_URL_VARIABLE}"
        )
    with fresh_database(admin_url) as url:
        yield url


@pytest.mark.parametrize("size", sorted(ROUNDS))
@pytest.mark.parametrize("case", CASES, ids=str)
def test_batch_commit(
    benchmark: BenchmarkFixture, external_database: str, case: Case, size: int
) -> None:
    rounds = ROUNDS[size]
    exchange = BatchedStream(size, batches=rounds)
    batch_ids = itertools.count(2)
    written: list[Batch] = []
    with event_loop_runner() as runner:
        database = runner.run(open_written(external_database, case, exchange.setup))

        def next_batch() -> tuple[tuple[Batch], dict[str, object]]:
            written.append(exchange.next_batch())
            return (written[-1],), {}

        def commit(batch: Batch) -> None:
            runner.run(case.write(database, next(batch_ids), batch))

        try:
            benchmark.pedantic(  # type: ignore[no-untyped-call]  # the plugin is untyped
                commit, setup=next_batch, rounds=rounds, iterations=1
            )
        finally:
            runner.run(release(database))
    assert stored_state(external_database) == expected_state(exchange, batches=1 + len(written))
    rows = sum(batch.rows for batch in written)
    assert rows > len(written) * size  # real traffic: orders, their accounts, fills
    if benchmark.stats is not None:
        median = benchmark.stats.stats.median
        benchmark.extra_info["rows_per_batch"] = round(rows / len(written))
        benchmark.extra_info["rows_per_second"] = round(rows / len(written) / median)


# -- the sweep behind docs/storage-writes.md -------------------------------


@dataclass(slots=True)
class Timings:
    """One case's commits at one batch size."""

    latencies: list[float] = field(default_factory=list)
    cpu: float = 0.0
    rows: int = 0
    rates: list[float] = field(default_factory=list)

    def add_repetition(self, latencies: list[float], cpu: float, rows: int) -> None:
        """Record one repetition's batches: their wall-clock latencies, the
        CPU time this process spent on them, and the rows they wrote."""
        self.latencies.extend(latencies)
        self.cpu += cpu
        self.rows += rows
        self.rates.append(len(latencies) / sum(latencies))

    def row(self, size: int, case: Case) -> str:
        """A Markdown table row: batches/s (over all batches, and the slowest
        and fastest repetition), rows/s, median and p99 commit and the
        client's CPU time per batch, in ms."""
        count = len(self.latencies)
        total = sum(self.latencies)
        p99 = statistics.quantiles(self.latencies, n=100, method="inclusive")[98]
        return (
            f"| {size} | {case.strategy} | {case.driver} | "
            f"{count / total:,.0f} ({min(self.rates):,.0f}–{max(self.rates):,.0f}) | "
            f"{self.rows / total:,.0f} | {statistics.median(self.latencies) * 1000:.2f} | "
            f"{p99 * 1000:.2f} | {self.cpu / count * 1000:.2f} |"
        )


async def sweep_size(urls: dict[Case, str], size: int, batches: int, repetitions: int) -> str:
    """Commit ``repetitions`` × ``batches`` batches of ``size`` requests
    through every case, the cases alternated and rotated each repetition;
    Markdown table rows."""
    exchange = BatchedStream(size, batches=batches * repetitions)
    databases = {case: await open_written(url, case, exchange.setup) for case, url in urls.items()}
    timings = {case: Timings() for case in CASES}
    rows_per_batch: list[int] = []
    try:
        for repetition in range(repetitions):
            chunk = [exchange.next_batch() for _ in range(batches)]
            rows_per_batch.extend(batch.rows for batch in chunk)
            order = CASES[repetition % len(CASES) :] + CASES[: repetition % len(CASES)]
            for case in order:
                latencies = []
                cpu_started = time.process_time()
                for index, batch in enumerate(chunk):
                    batch_id = 2 + repetition * batches + index
                    started = time.perf_counter()
                    await case.write(databases[case], batch_id, batch)
                    latencies.append(time.perf_counter() - started)
                cpu = time.process_time() - cpu_started
                timings[case].add_repetition(latencies, cpu, sum(batch.rows for batch in chunk))
    finally:
        for database in databases.values():
            await release(database)
    expected = expected_state(exchange, batches=1 + batches * repetitions)
    for case, url in urls.items():
        assert stored_state(url) == expected, f"{case} wrote something else"
    print(
        f"size {size}: {len(rows_per_batch)} batches per case, "
        f"rows per batch median {statistics.median(rows_per_batch):.0f}, "
        f"mean {statistics.mean(rows_per_batch):.0f}",
        flush=True,
    )
    return "\n".join(timings[case].row(size, case) for case in CASES)


#: Batches per case per repetition, by batch size in requests.
SWEEP_BATCHES = {1: 400, 10: 200, 100: 80, 1000: 10}


def main() -> None:
    """Run the sweep against the external server and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(SWEEP_BATCHES))
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the batch counts")
    arguments = parser.parse_args()
    admin_url = external_url()
    if admin_url is None:
        parser.error(f"set {EXTERNAL_URL_VARIABLE} to the PostgreSQL to measure")
    lines = [
        "| requests/batch | strategy | driver | batches/s (rep. min–max) | rows/s "
        "| p50 ms | p99 ms | client CPU ms/batch |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    with event_loop_runner() as runner:
        for size in arguments.sizes:
            batches = max(1, round(SWEEP_BATCHES.get(size, 10) * arguments.scale))
            with ExitStack() as stack:
                urls = {case: stack.enter_context(fresh_database(admin_url)) for case in CASES}
                lines.append(runner.run(sweep_size(urls, size, batches, arguments.repetitions)))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
