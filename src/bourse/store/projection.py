"""Writing the documented tables from the journal.

A window of journaled batches (``coalesce.Window``) is written as one
statement of data-modifying common table expressions, one per table, each
fed by arrays that ``unnest`` expands on the server. The same statement
moves the watermark (``projection``: the last batch the tables hold, and
when it committed), adds the window's ``batches`` rows and deletes the
journal rows it covers, so the tables, the watermark and the journal always
agree: a reader sees whole batches only, and a crash at any point leaves
either all of it or none.

The statement only moves the watermark from the batch just before the
window; if it finds another (a second projector got there first, or the
database is not the one these batches were journaled in), or the journal
lacks one of the window's batches, it writes nothing (``ProjectionConflictError``).

Rows that already exist are updated in place (``ON CONFLICT … DO UPDATE``);
foreign keys are checked at the end of the statement, so rows may refer to
rows the same window creates. New symbols and the symbols whose
market-data ``seq`` advanced share one array: ``ON CONFLICT … DO UPDATE``
may not touch a row twice in one statement. A ``seq`` never goes back
(``greatest``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from bourse.store.coalesce import Window, windows
from bourse.store.journal_codec import decode

_UPSERTS = """
WITH watermark AS (
  UPDATE projection SET batch_id = $2,
    committed_at = (SELECT committed_at FROM journal WHERE batch_id = $2)
  WHERE batch_id = $1 - 1
  RETURNING 1
), new_batches AS (
  INSERT INTO batches (id, requests, committed_at)
  SELECT batch_id, requests, committed_at FROM journal WHERE batch_id BETWEEN $1 AND $2
  RETURNING 1
), retired AS (
  DELETE FROM journal WHERE batch_id <= $2
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
         o.canceled_shares, to_timestamp(o.canceled_at), to_timestamp(o.created_at), o.batch_id
  FROM unnest(CAST($10 AS bigint[]), CAST($11 AS text[]),
              CAST($12 AS text[]), CAST($13 AS numeric[]),
              CAST($14 AS numeric[]), CAST($15 AS numeric[]),
              CAST($16 AS numeric[]), CAST($17 AS bigint[]),
              CAST($18 AS bigint[]), CAST($19 AS bigint[]))
    AS o(id, account_id, symbol, amount, limit_price, open_shares, canceled_shares,
         canceled_at, created_at, batch_id)
  ON CONFLICT (id) DO UPDATE SET open_shares = EXCLUDED.open_shares,
    canceled_shares = EXCLUDED.canceled_shares, canceled_at = EXCLUDED.canceled_at
)"""


def _appended(table: str, columns: tuple[str, ...], types: tuple[str, ...], first: int) -> str:
    """An ``INSERT`` appending rows to the history table ``table`` in the
    order its arrays give them. Column ``i``'s array is parameter
    ``first + i``; columns named ``…_at`` hold Unix seconds."""
    arrays = ", ".join(f"CAST(${first + i} AS {kind}[])" for i, kind in enumerate(types))
    selected = ", ".join(
        f"to_timestamp(r.{column})" if column.endswith("_at") else f"r.{column}"
        for column in columns
    )
    return f"""INSERT INTO {table} ({", ".join(columns)})
  SELECT {selected}
  FROM unnest({arrays})
    WITH ORDINALITY AS r({", ".join(columns)}, position)
  ORDER BY r.position"""  # noqa: S608 - built from this module's constants


#: The whole window in one statement: the watermark, the batches, the
#: upserts, then the two history tables, appended in the order the batches
#: made their rows. It answers how many watermark rows and batches it wrote.
_PROJECT = f"""{_UPSERTS}, new_executions AS (
  {
    _appended(
        "executions",
        ("order_id", "shares", "price", "executed_at", "batch_id"),
        ("bigint", "numeric", "numeric", "bigint", "bigint"),
        20,
    )
}
), new_deposits AS (
  {
    _appended(
        "deposits",
        ("account_id", "symbol", "amount", "deposited_at", "batch_id"),
        ("text", "text", "numeric", "bigint", "bigint"),
        25,
    )
}
)
SELECT (SELECT count(*) FROM watermark), (SELECT count(*) FROM new_batches)
"""  # noqa: S608 - built from this module's constants

_WATERMARK = "SELECT batch_id FROM projection"
#: Taken first in each projection: a second projector waits here, then
#: sees where the first left the watermark.
_LOCK_WATERMARK = "SELECT batch_id FROM projection FOR UPDATE"
_JOURNAL_AFTER = (
    "SELECT batch_id, changes FROM journal WHERE batch_id > $1 ORDER BY batch_id LIMIT $2"
)
#: Journal rows read at once when catching up, and rows written per window.
_CATCH_UP_BATCHES = 256
WINDOW_ROWS = 50_000


class ProjectionConflictError(Exception):
    """The database's watermark or journal does not match the window: nothing written."""


async def project(session: Any, window: Window) -> None:
    """Write ``window`` to the tables, move the watermark and retire its
    journal rows, in one transaction; raise ``ProjectionConflictError`` (and
    write nothing) unless the watermark stood just before the window and
    the journal held every batch of it."""
    async with session.transaction():
        found = await session.fetchval(_LOCK_WATERMARK)
        if found != window.first - 1:
            raise ProjectionConflictError(
                f"batches {window.first}-{window.last} do not follow the watermark {found}"
            )
        moved, batches = await session.fetchrow(_PROJECT, *window_arguments(window))
        if (moved, batches) != (1, window.last - window.first + 1):
            raise ProjectionConflictError(
                f"batches {window.first}-{window.last} do not follow the watermark, "
                "or the journal lacks some of them"
            )


async def watermark(session: Any) -> int:
    """The last batch the tables hold."""
    return int(await session.fetchval(_WATERMARK))


async def catch_up(session: Any) -> int:
    """Project every journal row beyond the watermark (after a crash or a
    failure); the new watermark. Should another projector move the
    watermark meanwhile, go on from where it left it."""
    last = await watermark(session)
    while True:
        try:
            async for window in _unprojected(session, last):
                await project(session, window)
                last = window.last
        except ProjectionConflictError:
            moved = await watermark(session)
            if moved <= last:
                raise
            last = moved
        else:
            return last


async def _unprojected(session: Any, after: int) -> AsyncIterator[Window]:
    while rows := await session.fetch(_JOURNAL_AFTER, after, _CATCH_UP_BATCHES):
        batches = ((batch_id, decode(changes)) for batch_id, changes in rows)
        for window in windows(batches, WINDOW_ROWS):
            yield window
        after = rows[-1][0]


def window_arguments(window: Window) -> tuple[Any, ...]:
    """The statement's arguments, in order: the window's bounds, then one
    array per column of each table."""
    changes = window.changes
    accounts, positions, orders = changes.accounts, changes.positions, changes.orders
    executions, deposits = changes.executions, changes.deposits
    symbols = dict.fromkeys(changes.symbols, 0)
    symbols.update((row.symbol, row.seq) for row in changes.sequences)
    return (
        window.first,
        window.last,
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
        window.order_batches,
        [row.order_id for row in executions],
        [row.execution.shares for row in executions],
        [row.execution.price for row in executions],
        [row.execution.time for row in executions],
        window.execution_batches,
        [row.account_id for row in deposits],
        [row.symbol for row in deposits],
        [row.amount for row in deposits],
        [row.time for row in deposits],
        window.deposit_batches,
    )
