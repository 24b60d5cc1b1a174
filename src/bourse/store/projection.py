"""Writing the documented tables from the journal, in SQL.

A window of consecutive journaled batches is projected by one statement
that PostgreSQL runs on its own: it reads the window's journal rows (JSON,
``journal_codec``), expands each table's rows, merges them (a row several
batches changed is written once, with its value from the latest batch; an
order keeps the first batch of the window that names it, which created
it unless an earlier window did, in which case the stored row keeps its
own; executions and deposits keep every row, in batch order then in the
order each batch made them), and writes them with ``INSERT … ON CONFLICT …
DO UPDATE``. The same statement adds the window's ``batches`` rows, moves
the watermark (``projection``: the last batch the tables hold, and when it
committed) and deletes the journal rows it covers, so the tables, the
watermark and the journal always agree: a reader sees whole batches only,
and a crash at any point leaves either all of it or none. The engine
process sends two window bounds and does no per-row work at all.

Each projection first locks the watermark row and checks it stands just
before the window; if it stands elsewhere (a second projector got there
first, or the database is not the one these batches were journaled in),
or the journal lacks a batch of the window (or holds one in a layout of
another version), nothing is written (``ProjectionConflictError``).

Foreign keys are checked at the end of the statement, so rows may refer to
rows the same window creates. A symbol's ``market_seq`` never goes back
(``greatest``).
"""

from __future__ import annotations

from typing import Any

from bourse.store.journal_codec import VERSION

_PROJECT = f"""
WITH window_rows AS MATERIALIZED (
  SELECT batch_id, requests, committed_at, CAST(changes AS jsonb) AS c
  FROM journal WHERE batch_id BETWEEN $1 AND $2
), readable AS MATERIALIZED (
  SELECT * FROM window_rows WHERE c->>'v' = '{VERSION}'
), watermark AS (
  UPDATE projection SET batch_id = $2,
    committed_at = (SELECT committed_at FROM readable WHERE batch_id = $2)
  WHERE batch_id = $1 - 1
  RETURNING 1
), new_batches AS (
  INSERT INTO batches (id, requests, committed_at)
  SELECT batch_id, requests, committed_at FROM readable
  RETURNING 1
), retired AS (
  DELETE FROM journal WHERE batch_id <= $2
), changed_symbols AS (
  INSERT INTO symbols (symbol, market_seq)
  SELECT r->>0, max(CAST(r->>1 AS bigint))
  FROM readable, jsonb_array_elements(c->'s') AS r
  GROUP BY r->>0
  ON CONFLICT (symbol) DO UPDATE
    SET market_seq = greatest(symbols.market_seq, EXCLUDED.market_seq)
), changed_accounts AS (
  INSERT INTO accounts (id, balance)
  SELECT DISTINCT ON (r->>0) r->>0, CAST(r->>1 AS numeric)
  FROM readable, jsonb_array_elements(c->'a') AS r
  ORDER BY r->>0, batch_id DESC
  ON CONFLICT (id) DO UPDATE SET balance = EXCLUDED.balance
), changed_positions AS (
  INSERT INTO positions (account_id, symbol, shares)
  SELECT DISTINCT ON (r->>0, r->>1) r->>0, r->>1, CAST(r->>2 AS numeric)
  FROM readable, jsonb_array_elements(c->'p') AS r
  ORDER BY r->>0, r->>1, batch_id DESC
  ON CONFLICT (account_id, symbol) DO UPDATE SET shares = EXCLUDED.shares
), order_rows AS (
  SELECT CAST(r->>0 AS bigint) AS id, r, batch_id,
         min(batch_id) OVER (PARTITION BY CAST(r->>0 AS bigint)) AS created_in
  FROM readable, jsonb_array_elements(c->'o') AS r
), changed_orders AS (
  INSERT INTO orders (id, account_id, symbol, amount, limit_price, open_shares,
                      canceled_shares, canceled_at, created_at, batch_id)
  SELECT DISTINCT ON (id) id, r->>1, r->>2, CAST(r->>3 AS numeric), CAST(r->>4 AS numeric),
         CAST(r->>5 AS numeric), CAST(r->>6 AS numeric),
         to_timestamp(CAST(r->>7 AS bigint)), to_timestamp(CAST(r->>8 AS bigint)), created_in
  FROM order_rows
  ORDER BY id, batch_id DESC
  ON CONFLICT (id) DO UPDATE SET open_shares = EXCLUDED.open_shares,
    canceled_shares = EXCLUDED.canceled_shares, canceled_at = EXCLUDED.canceled_at
), new_executions AS (
  INSERT INTO executions (order_id, shares, price, executed_at, batch_id)
  SELECT CAST(r->>0 AS bigint), CAST(r->>1 AS numeric), CAST(r->>2 AS numeric),
         to_timestamp(CAST(r->>3 AS bigint)), batch_id
  FROM readable, jsonb_array_elements(c->'e') WITH ORDINALITY AS x(r, position)
  ORDER BY batch_id, position
), new_deposits AS (
  INSERT INTO deposits (account_id, symbol, amount, deposited_at, batch_id)
  SELECT r->>0, r->>1, CAST(r->>2 AS numeric), to_timestamp(CAST(r->>3 AS bigint)), batch_id
  FROM readable, jsonb_array_elements(c->'d') WITH ORDINALITY AS x(r, position)
  ORDER BY batch_id, position
)
SELECT (SELECT count(*) FROM watermark), (SELECT count(*) FROM new_batches)
"""  # noqa: S608 - built from this module's constants

_WATERMARK = "SELECT batch_id FROM projection"
#: Taken first in each projection: a second projector waits here, then
#: sees where the first left the watermark.
_LOCK_WATERMARK = "SELECT batch_id FROM projection FOR UPDATE"
#: The size of each journal row beyond a batch, to cut catching up into windows.
_JOURNAL_AFTER = "SELECT batch_id, rows FROM journal WHERE batch_id > $1 ORDER BY batch_id"

#: Rows a window holds at most, unless one batch alone holds more.
WINDOW_ROWS = 50_000


class ProjectionConflictError(Exception):
    """The database's watermark or journal does not match the window: nothing written."""


async def project(session: Any, first: int, last: int) -> None:
    """Write batches ``first`` to ``last`` from the journal to the tables,
    move the watermark and retire their journal rows, in one transaction;
    raise ``ProjectionConflictError`` (and write nothing) unless the
    watermark stood just before the window and the journal held every
    batch of it in a layout this version reads."""
    async with session.transaction():
        found = await session.fetchval(_LOCK_WATERMARK)
        if found != first - 1:
            raise ProjectionConflictError(
                f"batches {first}-{last} do not follow the watermark {found}"
            )
        moved, batches = await session.fetchrow(_PROJECT, first, last)
        if (moved, batches) != (1, last - first + 1):
            raise ProjectionConflictError(
                f"the journal lacks some of batches {first}-{last}, or holds them in a "
                f"layout other than version {VERSION}"
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
            sizes = [tuple(row) for row in await session.fetch(_JOURNAL_AFTER, last)]
            for first, final in windows(sizes, WINDOW_ROWS):
                await project(session, first, final)
                last = final
        except ProjectionConflictError:
            moved = await watermark(session)
            if moved <= last:
                raise
            last = moved
        else:
            return last


def windows(sizes: list[tuple[int, int]], max_rows: int) -> list[tuple[int, int]]:
    """Consecutive batches, given as ``(batch id, rows)`` in order, cut into
    windows ``(first, last)`` of about ``max_rows`` rows each: a window
    closes once it reaches the bound, and one batch larger than the bound
    makes a window alone."""
    cut: list[tuple[int, int]] = []
    first, rows = 0, 0
    for batch_id, batch_rows in sizes:
        if not first:
            first = batch_id
        rows += batch_rows
        if rows >= max_rows:
            cut.append((first, batch_id))
            first, rows = 0, 0
    if first:
        cut.append((first, sizes[-1][0]))
    return cut
