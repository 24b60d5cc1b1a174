"""Reading the exchange back from PostgreSQL, to rebuild the exchange.

Recovery needs every account and position, every order with its fills (a
query may ask about any order ever placed), each symbol's last market-data
``seq``, and the last batch number.
Orders come back in id order, which is arrival order, so resting orders
re-enter their price levels in their original priority. Everything is read
in one repeatable-read snapshot, through the driver's own connection:
recovery reads millions of rows, and SQLAlchemy's row objects would
double its time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bourse.core.changes import (
    AccountRow,
    ChangeSet,
    DepositRow,
    ExecutionRow,
    OrderRow,
    PositionRow,
    SequenceRow,
)
from bourse.core.results import Execution
from bourse.store.session import pooled_session

_ACCOUNTS = "SELECT id, balance FROM accounts"
_SYMBOLS = "SELECT symbol, market_seq FROM symbols ORDER BY symbol"
_POSITIONS = "SELECT account_id, symbol, shares FROM positions"
_DEPOSITS = (
    "SELECT account_id, symbol, amount, CAST(extract(epoch FROM deposited_at) AS bigint) "
    "FROM deposits ORDER BY id"
)
_ORDERS = (
    "SELECT id, account_id, symbol, amount, limit_price, open_shares, canceled_shares, "
    "CAST(extract(epoch FROM canceled_at) AS bigint), "
    "CAST(extract(epoch FROM created_at) AS bigint) "
    "FROM orders ORDER BY id"
)
_EXECUTIONS = (
    "SELECT order_id, shares, price, CAST(extract(epoch FROM executed_at) AS bigint) "
    "FROM executions ORDER BY id"
)
_LAST_BATCH = "SELECT coalesce(max(id), 0) FROM batches"


async def load_state(database: AsyncEngine) -> tuple[ChangeSet, int]:
    """The exchange as last committed, as the change set that builds it from
    nothing, and the last batch id; read in one repeatable-read snapshot."""
    async with (
        pooled_session(database) as session,
        session.transaction(isolation="repeatable_read", readonly=True),
    ):
        return await _read(session)


async def _read(session: Any) -> tuple[ChangeSet, int]:
    sequences = [SequenceRow(*row) for row in await session.fetch(_SYMBOLS)]
    symbols = [row.symbol for row in sequences]
    accounts = [AccountRow(*row) for row in await session.fetch(_ACCOUNTS)]
    positions = [PositionRow(*row) for row in await session.fetch(_POSITIONS)]
    orders = [OrderRow(*row) for row in await session.fetch(_ORDERS)]
    executions = [
        ExecutionRow(order_id, Execution(shares, price, time))
        for order_id, shares, price, time in await session.fetch(_EXECUTIONS)
    ]
    deposits = [DepositRow(*row) for row in await session.fetch(_DEPOSITS)]
    last_batch_id = await session.fetchval(_LAST_BATCH)
    stored = ChangeSet(symbols, accounts, positions, orders, executions, deposits, sequences)
    return stored, int(last_batch_id)
