"""Reading the exchange back from PostgreSQL, to rebuild the engine.

Recovery needs every account and position, every order with its fills (a
query may ask about any order ever placed), and the last batch number.
Orders come back in id order, which is arrival order, so resting orders
re-enter their price levels in their original priority.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bourse.core.changes import AccountRow, DepositRow, ExecutionRow, OrderRow, PositionRow
from bourse.core.results import Execution

_ACCOUNTS = text("SELECT id, balance FROM accounts")
_SYMBOLS = text("SELECT symbol FROM symbols ORDER BY symbol")
_POSITIONS = text("SELECT account_id, symbol, shares FROM positions")
_DEPOSITS = text(
    "SELECT account_id, symbol, amount, CAST(extract(epoch FROM deposited_at) AS bigint) "
    "FROM deposits ORDER BY id"
)
_ORDERS = text(
    "SELECT id, account_id, symbol, amount, limit_price, open_shares, canceled_shares, "
    "CAST(extract(epoch FROM canceled_at) AS bigint), "
    "CAST(extract(epoch FROM created_at) AS bigint) "
    "FROM orders ORDER BY id"
)
_EXECUTIONS = text(
    "SELECT order_id, shares, price, CAST(extract(epoch FROM executed_at) AS bigint) "
    "FROM executions ORDER BY id"
)
_LAST_BATCH = text("SELECT coalesce(max(id), 0) FROM batches")


@dataclass(frozen=True, slots=True)
class StoredState:
    """Everything the database holds about the exchange."""

    symbols: list[str]
    accounts: list[AccountRow]
    positions: list[PositionRow]
    orders: list[OrderRow]
    executions: list[ExecutionRow]
    deposits: list[DepositRow]
    last_batch_id: int


async def load_state(database: AsyncEngine) -> StoredState:
    """The exchange as last committed, read in one repeatable-read snapshot."""
    async with database.connect() as connection:
        await connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        return await _read(connection)


async def _read(connection: AsyncConnection) -> StoredState:
    symbols = [row[0] for row in await connection.execute(_SYMBOLS)]
    accounts = [AccountRow(*row) for row in await connection.execute(_ACCOUNTS)]
    positions = [PositionRow(*row) for row in await connection.execute(_POSITIONS)]
    orders = [OrderRow(*row) for row in await connection.execute(_ORDERS)]
    executions = [
        ExecutionRow(order_id, Execution(shares, price, time))
        for order_id, shares, price, time in await connection.execute(_EXECUTIONS)
    ]
    deposits = [DepositRow(*row) for row in await connection.execute(_DEPOSITS)]
    last_batch_id = (await connection.execute(_LAST_BATCH)).scalar_one()
    return StoredState(
        symbols, accounts, positions, orders, executions, deposits, int(last_batch_id)
    )
