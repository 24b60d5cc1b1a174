"""The write-cost measurement writes what it says it measures.

Runs against both clusters. The batch statement's batches must all be in
the database, and the floor must have written exactly one row per order
the workload created (which the orders table holds too): a floor that
wrote fewer rows would look cheaper than it is.
"""

from __future__ import annotations

import asyncio

import psycopg

from bourse.bench.write_cost import cut_batches, measure, new_orders


def test_new_orders_are_each_order_once() -> None:
    _, batches = cut_batches(requests_per_batch=8, batches=30)
    created = [row.order_id for rows in new_orders(batches) for row in rows]
    changed = {row.order_id for changes in batches for row in changes.orders}
    assert len(created) == len(set(created))
    assert set(created) == changed
    assert sum(map(len, new_orders(batches))) < sum(len(c.orders) for c in batches), (
        "the workload fills and cancels: some batches change orders made earlier"
    )


def test_both_writes_are_complete(database_url: str) -> None:
    statement, floor = asyncio.run(measure(database_url, requests_per_batch=4, batches=25))
    with psycopg.connect(database_url) as connection:
        stored_batches = connection.execute("SELECT count(*) FROM batches").fetchone()
        stored_orders = connection.execute("SELECT count(*) FROM orders").fetchone()
        scratch = connection.execute("SELECT to_regclass('write_cost_floor')").fetchone()
    assert stored_batches == (26,)  # the setup, then 25
    assert (statement.requests, statement.batches) == (100, 25)
    assert stored_orders == (floor.rows,)
    assert scratch == (None,), "the scratch table is dropped"
    assert statement.rows > floor.rows
    assert "µs per request" in statement.line("batch statement")
