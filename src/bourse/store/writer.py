"""Writing one batch of changes as one PostgreSQL statement.

The exchange cuts a ``ChangeSet`` (every changed row once, at its value at the
cut). This module sends it as a single statement of data-modifying common
table expressions, one per table, each fed by arrays that ``unnest``
expands on the server; sent outside an explicit transaction, the statement
is its own transaction. A batch therefore costs one round trip and one
WAL flush however many rows it holds (docs/storage-writes.md has the
measurements behind the array-and-unnest choice; the single statement
saves the round trips of BEGIN, one statement per table, and COMMIT).
Rows that already exist are updated in place (``ON CONFLICT … DO
UPDATE``), and a ``batches`` row records the batch. Foreign keys are
checked at the end of the statement, so rows may refer to rows the same
batch creates.

New symbols and the symbols whose market-data ``seq`` advanced share one
array: ``ON CONFLICT … DO UPDATE`` may not touch a row twice in one
statement, and a symbol created in a batch may trade in it too. A
``seq`` never goes back (``greatest``), so a new symbol's 0 never lowers
a stored one.

The statement runs on the driver's own connection (asyncpg, taken from
SQLAlchemy's pool and kept for the writer's life): SQLAlchemy's per-call
work costs more than the whole round trip at this rate, and a dedicated
session needs no liveness ping. The caller is told, with the session's
server process id, the moment the statement is sent: a failure before
that means nothing was written; after it, the outcome is in doubt until
that session has ended.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bourse.core.changes import ChangeSet
from bourse.store.fence import SessionId, claim

#: Called with the writing session just before a batch's statement goes
#: out: from then on, its outcome is in doubt until that session has ended.
StatementSent = Callable[[SessionId], None]

_UPSERTS = """
WITH new_batch AS (
  INSERT INTO batches (id, requests) VALUES ($1, $2)
), changed_symbols AS (
  INSERT INTO symbols (symbol, market_seq)
  SELECT * FROM unnest(CAST($3 AS text[]), CAST($4 AS bigint[]))
  ON CONFLICT (symbol) DO UPDATE
    SET market_seq = greatest(symbols.market_seq, EXCLUDED.market_seq)
), changed_accounts AS (
  INSERT INTO accounts (id, balance)
  SELECT * FROM unnest(CAST($5 AS text[]), CAST($6 AS numeric[]))
  ON CONFLICT (id) DO UPDATE SET balance = EXCLUDED.balance
), changed_positions AS (
  INSERT INTO positions (account_id, symbol, shares)
  SELECT * FROM unnest(CAST($7 AS text[]),
                       CAST($8 AS text[]), CAST($9 AS numeric[]))
  ON CONFLICT (account_id, symbol) DO UPDATE SET shares = EXCLUDED.shares
), changed_orders AS (
  INSERT INTO orders (id, account_id, symbol, amount, limit_price, open_shares,
                      canceled_shares, canceled_at, created_at, batch_id)
  SELECT o.id, o.account_id, o.symbol, o.amount, o.limit_price, o.open_shares,
         o.canceled_shares, to_timestamp(o.canceled_at), to_timestamp(o.created_at), $1
  FROM unnest(CAST($10 AS bigint[]), CAST($11 AS text[]),
              CAST($12 AS text[]), CAST($13 AS numeric[]),
              CAST($14 AS numeric[]), CAST($15 AS numeric[]),
              CAST($16 AS numeric[]), CAST($17 AS bigint[]),
              CAST($18 AS bigint[]))
    AS o(id, account_id, symbol, amount, limit_price, open_shares, canceled_shares,
         canceled_at, created_at)
  ON CONFLICT (id) DO UPDATE SET open_shares = EXCLUDED.open_shares,
    canceled_shares = EXCLUDED.canceled_shares, canceled_at = EXCLUDED.canceled_at
)"""


def _appended(table: str, columns: tuple[str, ...], types: tuple[str, ...], first: int) -> str:
    """An ``INSERT`` appending rows to the history table ``table`` in the
    order its arrays give them, each tagged with the batch ($1). Column
    ``i``'s array is parameter ``first + i``; the last column is a time in
    Unix seconds."""
    arrays = ", ".join(f"CAST(${first + i} AS {kind}[])" for i, kind in enumerate(types))
    *values, time = columns
    selected = ", ".join([*(f"r.{column}" for column in values), f"to_timestamp(r.{time})", "$1"])
    return f"""INSERT INTO {table} ({", ".join(columns)}, batch_id)
  SELECT {selected}
  FROM unnest({arrays})
    WITH ORDINALITY AS r({", ".join(columns)}, position)
  ORDER BY r.position"""  # noqa: S608 - built from this module's constants


#: The whole batch in one statement: the upserts, then the two history
#: tables, appended in the order the batch made their rows.
_WRITE_BATCH = f"""{_UPSERTS}, new_executions AS (
  {
    _appended(
        "executions",
        ("order_id", "shares", "price", "executed_at"),
        ("bigint", "numeric", "numeric", "bigint"),
        19,
    )
}
), new_deposits AS (
  {
    _appended(
        "deposits",
        ("account_id", "symbol", "amount", "deposited_at"),
        ("text", "text", "numeric", "bigint"),
        23,
    )
}
)
SELECT 1
"""


class DivergedError(Exception):
    """The database's last batch is not the one before the batch to write:
    it is not the database the exchange was built from (after a failover,
    the new primary may lack the last batches). Nothing was written."""


_LAST_BATCH = "SELECT coalesce(max(id), 0) FROM batches"


class BatchWriter:
    """Writes batches on one dedicated session, kept open between batches
    (no pool checkout, no liveness ping: a failure makes the caller reset
    the writer, and the next batch opens a fresh session).

    A new session may reach another server than the last one did: with
    several hosts in the URL, the primary may have failed over while no
    batch was in flight. So the first batch on each new session checks
    first that the database's last batch is the one before it, and raises
    ``DivergedError`` (nothing written) when it is not: the exchange must
    then be rebuilt from the database, as after any failure.
    """

    def __init__(self, database: AsyncEngine) -> None:
        self._database = database
        self._connection: AsyncConnection | None = None
        self._session: Any = None
        self._session_id: SessionId | None = None
        #: True until the session's first batch has checked it follows on.
        self._unchecked = False

    async def write(
        self, batch_id: int, requests: int, changes: ChangeSet, statement_sent: StatementSent
    ) -> None:
        """Write ``changes`` as batch ``batch_id``, atomically and durably.

        ``statement_sent`` is called with the session just before the
        statement goes out: an exception raised before that call means
        nothing was written.
        """
        arguments = batch_arguments(batch_id, requests, changes)
        session, session_id = await self.open_session()
        if self._unchecked:
            last = await session.fetchval(_LAST_BATCH)
            if last != batch_id - 1:
                raise DivergedError(
                    f"the database's last batch is {last}, not {batch_id - 1} as the "
                    "exchange's: it was not built from this database"
                )
            self._unchecked = False
        statement_sent(session_id)
        await session.execute(_WRITE_BATCH, *arguments)

    async def open_session(self) -> tuple[Any, SessionId]:
        """The writing session, opened if need be; opening it takes the
        writer's lock (``fence.claim``), or raises ``FencedOutError``."""
        if self._session is not None and self._session.is_closed():
            await self.forget_session()  # the server ended it; nothing was sent on it
        if self._session is None:
            connection = await self._database.connect()
            session = (await connection.get_raw_connection()).driver_connection
            assert session is not None
            self._connection, self._session = connection, session
            try:
                self._session_id = await claim(session)
            except BaseException:
                await self.forget_session()
                raise
            self._unchecked = True
        assert self._session_id is not None
        return self._session, self._session_id

    async def forget_session(self) -> None:
        """Drop the session without waiting on the server (it may no longer
        answer): its socket is closed at once; the next batch opens a new one."""
        connection, session = self._connection, self._session
        self._connection = self._session = self._session_id = None
        if session is not None:
            session.terminate()
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.invalidate()

    async def close(self) -> None:
        """Close the session cleanly."""
        connection, self._connection, self._session = self._connection, None, None
        self._session_id = None
        if connection is not None:
            await connection.close()


def batch_arguments(batch_id: int, requests: int, changes: ChangeSet) -> tuple[Any, ...]:
    """The statement's arguments, in order: one array per column of each table."""
    accounts, positions, orders = changes.accounts, changes.positions, changes.orders
    executions, deposits = changes.executions, changes.deposits
    symbols = dict.fromkeys(changes.symbols, 0)
    symbols.update((row.symbol, row.seq) for row in changes.sequences)
    return (
        batch_id,
        requests,
        list(symbols),
        list(symbols.values()),
        [row.account_id for row in accounts],
        [row.balance for row in accounts],
        [row.account_id for row in positions],
        [row.symbol for row in positions],
        [row.shares for row in positions],
        [row.order_id for row in orders],
        [row.account_id for row in orders],
        [row.symbol for row in orders],
        [row.amount for row in orders],
        [row.limit_price for row in orders],
        [row.open_shares for row in orders],
        [row.canceled_shares for row in orders],
        [row.canceled_at for row in orders],
        [row.created_at for row in orders],
        [row.order_id for row in executions],
        [row.execution.shares for row in executions],
        [row.execution.price for row in executions],
        [row.execution.time for row in executions],
        [row.account_id for row in deposits],
        [row.symbol for row in deposits],
        [row.amount for row in deposits],
        [row.time for row in deposits],
    )
