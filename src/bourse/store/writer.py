"""Writing one batch of changes in one PostgreSQL transaction.

The engine cuts a ``ChangeSet`` (every changed row once, at its value at the
cut); this module writes it with one statement per table, each row set
passed as arrays and expanded by ``unnest`` on the server, so a batch costs
a handful of round trips however many rows it holds
(docs/storage-writes.md has the measurements behind that choice). Rows that
already exist are updated in place (``ON CONFLICT … DO UPDATE``). A
``batches`` row records the batch in the same transaction.

The caller learns whether a failure happened before COMMIT was sent (the
transaction certainly rolled back) or after (the outcome is unknown), which
decides what its clients are told, and which server session to settle
before the exchange is read back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bourse.core.changes import ChangeSet

Statement = tuple[TextClause, dict[str, Any]]

_INSERT_BATCH = text("INSERT INTO batches (id, requests) VALUES (:batch, :requests)")

_INSERT_SYMBOLS = text(
    "INSERT INTO symbols (symbol) SELECT unnest(CAST(:symbols AS text[])) "
    "ON CONFLICT (symbol) DO NOTHING"
)

_UPSERT_ACCOUNTS = text(
    "INSERT INTO accounts (id, balance) "
    "SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:balances AS numeric[])) "
    "ON CONFLICT (id) DO UPDATE SET balance = EXCLUDED.balance"
)

_UPSERT_POSITIONS = text(
    "INSERT INTO positions (account_id, symbol, shares) "
    "SELECT * FROM unnest(CAST(:accounts AS text[]), CAST(:symbols AS text[]), "
    "CAST(:shares AS numeric[])) "
    "ON CONFLICT (account_id, symbol) DO UPDATE SET shares = EXCLUDED.shares"
)

_UPSERT_ORDERS = text(
    "INSERT INTO orders (id, account_id, symbol, amount, limit_price, open_shares, "
    "canceled_shares, canceled_at, created_at, batch_id) "
    "SELECT o.id, o.account_id, o.symbol, o.amount, o.limit_price, o.open_shares, "
    "o.canceled_shares, to_timestamp(o.canceled_at), to_timestamp(o.created_at), :batch "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:accounts AS text[]), CAST(:symbols AS text[]), "
    "CAST(:amounts AS numeric[]), CAST(:limits AS numeric[]), CAST(:open AS numeric[]), "
    "CAST(:canceled AS numeric[]), CAST(:canceled_at AS bigint[]), "
    "CAST(:created_at AS bigint[])) "
    "AS o(id, account_id, symbol, amount, limit_price, open_shares, canceled_shares, "
    "canceled_at, created_at) "
    "ON CONFLICT (id) DO UPDATE SET open_shares = EXCLUDED.open_shares, "
    "canceled_shares = EXCLUDED.canceled_shares, canceled_at = EXCLUDED.canceled_at"
)

_INSERT_EXECUTIONS = text(
    "INSERT INTO executions (order_id, shares, price, executed_at, batch_id) "
    "SELECT e.order_id, e.shares, e.price, to_timestamp(e.executed_at), :batch "
    "FROM unnest(CAST(:orders AS bigint[]), CAST(:shares AS numeric[]), "
    "CAST(:prices AS numeric[]), CAST(:times AS bigint[])) "
    "WITH ORDINALITY AS e(order_id, shares, price, executed_at, position) "
    "ORDER BY e.position"
)

_INSERT_DEPOSITS = text(
    "INSERT INTO deposits (account_id, symbol, amount, deposited_at, batch_id) "
    "SELECT d.account_id, d.symbol, d.amount, to_timestamp(d.deposited_at), :batch "
    "FROM unnest(CAST(:accounts AS text[]), CAST(:symbols AS text[]), "
    "CAST(:amounts AS numeric[]), CAST(:times AS bigint[])) "
    "WITH ORDINALITY AS d(account_id, symbol, amount, deposited_at, position) "
    "ORDER BY d.position"
)


async def write_batch(
    database: AsyncEngine,
    batch_id: int,
    requests: int,
    changes: ChangeSet,
    commit_sent: Callable[[int], None],
) -> None:
    """Write ``changes`` as batch ``batch_id`` in one transaction.

    ``commit_sent`` is called with the server process id of the session just
    before COMMIT goes to the server: an exception raised before that call
    means nothing was committed; after it, the session named is the one
    whose outcome is in doubt.
    """
    async with database.connect() as connection:
        transaction = await connection.begin()
        await connection.execute(_INSERT_BATCH, {"batch": batch_id, "requests": requests})
        for statement, parameters in batch_statements(changes):
            await connection.execute(statement, {"batch": batch_id, **parameters})
        session = (await connection.get_raw_connection()).driver_connection
        assert session is not None
        commit_sent(session.get_server_pid())
        await transaction.commit()


def batch_statements(changes: ChangeSet) -> list[Statement]:
    """The statements a change set needs, in foreign-key order, skipping
    tables it does not touch (each still needs the ``batch`` parameter)."""
    return [
        statement
        for statement in (
            _symbols(changes),
            _accounts(changes),
            _positions(changes),
            _orders(changes),
            _executions(changes),
            _deposits(changes),
        )
        if statement is not None
    ]


def _symbols(changes: ChangeSet) -> Statement | None:
    if not changes.symbols:
        return None
    return _INSERT_SYMBOLS, {"symbols": list(changes.symbols)}


def _accounts(changes: ChangeSet) -> Statement | None:
    rows = changes.accounts
    if not rows:
        return None
    return _UPSERT_ACCOUNTS, {
        "ids": [row.account_id for row in rows],
        "balances": [row.balance for row in rows],
    }


def _positions(changes: ChangeSet) -> Statement | None:
    rows = changes.positions
    if not rows:
        return None
    return _UPSERT_POSITIONS, {
        "accounts": [row.account_id for row in rows],
        "symbols": [row.symbol for row in rows],
        "shares": [row.shares for row in rows],
    }


def _orders(changes: ChangeSet) -> Statement | None:
    rows = changes.orders
    if not rows:
        return None
    return _UPSERT_ORDERS, {
        "ids": [row.order_id for row in rows],
        "accounts": [row.account_id for row in rows],
        "symbols": [row.symbol for row in rows],
        "amounts": [row.amount for row in rows],
        "limits": [row.limit_price for row in rows],
        "open": [row.open_shares for row in rows],
        "canceled": [row.canceled_shares for row in rows],
        "canceled_at": [row.canceled_at for row in rows],
        "created_at": [row.created_at for row in rows],
    }


def _executions(changes: ChangeSet) -> Statement | None:
    rows = changes.executions
    if not rows:
        return None
    return _INSERT_EXECUTIONS, {
        "orders": [row.order_id for row in rows],
        "shares": [row.execution.shares for row in rows],
        "prices": [row.execution.price for row in rows],
        "times": [row.execution.time for row in rows],
    }


def _deposits(changes: ChangeSet) -> Statement | None:
    rows = changes.deposits
    if not rows:
        return None
    return _INSERT_DEPOSITS, {
        "accounts": [row.account_id for row in rows],
        "symbols": [row.symbol for row in rows],
        "amounts": [row.amount for row in rows],
        "times": [row.time for row in rows],
    }
