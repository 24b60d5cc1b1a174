"""What PostgreSQL spends to store one request, and the floor under it.

``python -m bourse.bench.write_cost --database-url URL`` feeds the exchange
the benchmark workload, cuts a batch every K requests (``--batch``, the
batch size the 32-client bench produces is about 16), writes the batches
with the server's own store (each batch's journal row, and the projection
of the tables behind it, waited for at the end) and reports the CPU that this machine's
PostgreSQL processes used per request, with the wall time per batch. Then
it writes, into a scratch table, only the rows of the orders those
batches created (primary key only, no foreign keys, the same
array-and-unnest shape, one durable transaction per batch): what the
least durable record of the orders costs, for comparison. Figures are
only meaningful for a PostgreSQL on this machine (its processes are found
by name) that is otherwise idle.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

import asyncpg  # type: ignore[import-untyped]
import psutil  # type: ignore[import-untyped]

from bourse.bench.workload import WorkloadShape, setup_request, transaction_stream
from bourse.core.changes import ChangeSet, OrderRow
from bourse.core.exchange import Exchange
from bourse.store.fence import SessionId
from bourse.store.store import Store

#: The clock of the generated exchange: one request per second from here.
START = 1_767_225_600

_FLOOR_TABLE = """
CREATE TABLE write_cost_floor (
  id bigint PRIMARY KEY, account_id text NOT NULL, symbol text NOT NULL,
  amount numeric NOT NULL, limit_price numeric NOT NULL, open_shares numeric NOT NULL,
  created_at timestamptz NOT NULL)
"""

_FLOOR_WRITE = """
INSERT INTO write_cost_floor
SELECT o.id, o.account_id, o.symbol, o.amount, o.limit_price, o.open_shares,
       to_timestamp(o.created_at)
FROM unnest(CAST($1 AS bigint[]), CAST($2 AS text[]), CAST($3 AS text[]),
            CAST($4 AS numeric[]), CAST($5 AS numeric[]), CAST($6 AS numeric[]),
            CAST($7 AS bigint[]))
  AS o(id, account_id, symbol, amount, limit_price, open_shares, created_at)
"""


@dataclass(frozen=True, slots=True)
class Cost:
    """One way of writing the same batches."""

    requests: int
    rows: int
    batches: int
    postgres_cpu_seconds: float
    wall_seconds: float

    def line(self, label: str) -> str:
        """A one-line summary, per request and per batch."""
        return (
            f"{label}: {self.rows / self.requests:.2f} rows per request, PostgreSQL CPU "
            f"{1e6 * self.postgres_cpu_seconds / self.requests:.1f} µs per request, "
            f"{1e3 * self.wall_seconds / self.batches:.2f} ms per batch"
        )


def postgres_cpu_seconds() -> float:
    """CPU seconds used so far by every PostgreSQL process of this machine."""
    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        times = process.info["cpu_times"]
        if (process.info["name"] or "").startswith("postgres") and times is not None:
            total += times.user + times.system
    return total


def cut_batches(requests_per_batch: int, batches: int) -> tuple[ChangeSet, list[ChangeSet]]:
    """The setup's changes, then those of ``batches`` batches of the workload."""
    shape = WorkloadShape(requests=requests_per_batch * batches)
    exchange = Exchange()
    exchange.apply(setup_request(shape), now=START)
    setup = exchange.take_changes()
    stream = transaction_stream(shape, seed=7)
    cut = []
    for start in range(0, len(stream), requests_per_batch):
        for offset, request in enumerate(stream[start : start + requests_per_batch]):
            exchange.apply(request, START + start + offset + 1)
        cut.append(exchange.take_changes())
    return setup, cut


def new_orders(batches: Sequence[ChangeSet]) -> list[list[OrderRow]]:
    """Per batch, the rows of the orders it created (not those it changed)."""
    seen: set[int] = set()
    created = []
    for changes in batches:
        fresh = [row for row in changes.orders if row.order_id not in seen]
        seen.update(row.order_id for row in fresh)
        created.append(fresh)
    return created


async def _timed(writes: Sequence[Callable[[], Awaitable[object]]]) -> tuple[float, float]:
    """PostgreSQL CPU seconds and wall seconds of awaiting ``writes`` in turn."""
    cpu, wall = postgres_cpu_seconds(), time.perf_counter()
    for write in writes:
        await write()
    return postgres_cpu_seconds() - cpu, time.perf_counter() - wall


def _ignore_session(session: SessionId) -> None:
    """Nobody waits on a measured batch."""


async def measure_statement(
    url: str, setup: ChangeSet, batches: list[ChangeSet], requests_per_batch: int
) -> Cost:
    """The server's store, one batch after another, until the projection
    has written them all."""
    store = Store(url)
    try:
        await store.migrate()
        await store.write(1, 1, setup, _ignore_session)
        writes: list[Callable[[], Awaitable[object]]] = [
            partial(store.write, batch_id, requests_per_batch, changes, _ignore_session)
            for batch_id, changes in enumerate(batches, start=2)
        ]
        writes.append(store.projector.drain)
        cpu, wall = await _timed(writes)
    finally:
        await store.close()
    rows = sum(changes.row_count() for changes in batches)
    return Cost(requests_per_batch * len(batches), rows, len(batches), cpu, wall)


def _floor_arguments(rows: list[OrderRow]) -> tuple[list[object], ...]:
    return (
        [row.order_id for row in rows],
        [row.account_id for row in rows],
        [row.symbol for row in rows],
        [row.amount for row in rows],
        [row.limit_price for row in rows],
        [row.open_shares for row in rows],
        [row.created_at for row in rows],
    )


async def measure_floor(url: str, created: list[list[OrderRow]], requests_per_batch: int) -> Cost:
    """Only the new order rows, into the scratch table (dropped afterwards)."""
    rows = sum(map(len, created))
    session = await asyncpg.connect(url)
    try:
        await session.execute(_FLOOR_TABLE)
        writes = [
            partial(session.execute, _FLOOR_WRITE, *_floor_arguments(rows)) for rows in created
        ]
        cpu, wall = await _timed(writes)
        stored = await session.fetchval("SELECT count(*) FROM write_cost_floor")
        if stored != rows:
            raise AssertionError(f"the floor table holds {stored} rows")
    finally:
        await session.execute("DROP TABLE IF EXISTS write_cost_floor")
        await session.close()
    return Cost(requests_per_batch * len(created), rows, len(created), cpu, wall)


async def measure(url: str, requests_per_batch: int, batches: int) -> tuple[Cost, Cost]:
    """The batch statement's cost and the floor's, for the same batches,
    on the empty database at ``url``."""
    setup, cut = cut_batches(requests_per_batch, batches)
    statement = await measure_statement(url, setup, cut, requests_per_batch)
    floor = await measure_floor(url, new_orders(cut), requests_per_batch)
    return statement, floor


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="an empty database")
    parser.add_argument("--batch", type=int, default=16, help="requests per batch (16)")
    parser.add_argument("--batches", type=int, default=2000, help="batches written (2000)")
    args = parser.parse_args(argv)
    statement, floor = asyncio.run(measure(args.database_url, args.batch, args.batches))
    print(f"{args.batches} batches of {args.batch} requests")
    print(statement.line("batch statement (every documented row)"))
    print(floor.line("floor (new order rows only)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
