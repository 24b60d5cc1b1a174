"""Reading the exchange's live state back from PostgreSQL, to rebuild it.

Recovery needs what can still change, and no history: every account and
position, each symbol's last market-data ``seq``, the open orders with
their fills, the cash and shares ever deposited (summed), each symbol's
recent trades (the market data starts from them), the highest order id
ever issued (never handed out again) and the last batch number. Closed
orders stay in the tables, where queries of them are answered
(``lookups.py``); so restart time and memory follow the open orders, not
the history.

Open orders are found through a partial index (``orders_open``) and
their fills through ``executions_by_order``; the recent trades are read
from the newest execution back, a chunk at a time, until every symbol has
its share. Orders come back in id order, which is arrival order, so
resting orders re-enter their price levels in their original priority.
Everything is read in one repeatable-read snapshot, through the driver's
own connection: SQLAlchemy's row objects would double the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby
from operator import itemgetter
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
from bourse.core.market import RECENT_TRADES, Trade
from bourse.core.money import ZERO
from bourse.core.restore import RecentTrades
from bourse.core.results import Execution
from bourse.store.session import pooled_session

_ACCOUNTS = "SELECT id, balance FROM accounts"
_SYMBOLS = "SELECT symbol, market_seq FROM symbols ORDER BY symbol"
_POSITIONS = "SELECT account_id, symbol, shares FROM positions"
_DEPOSITS = "SELECT '', symbol, sum(amount), 0 FROM deposits GROUP BY symbol"
#: An open order has nothing canceled. Numbers come as text: the driver's
#: own decoding of ``numeric`` costs twice as much as ``Decimal(text)``.
_OPEN_ORDERS = (
    "SELECT id, account_id, symbol, CAST(amount AS text), CAST(limit_price AS text), "
    "CAST(open_shares AS text), CAST(extract(epoch FROM created_at) AS bigint) "
    "FROM orders WHERE open_shares > 0 ORDER BY id"
)
_OPEN_ORDER_FILLS = (
    "SELECT e.order_id, CAST(e.shares AS text), CAST(e.price AS text), "
    "CAST(extract(epoch FROM e.executed_at) AS bigint) "
    "FROM orders o JOIN executions e ON e.order_id = o.id "
    "WHERE o.open_shares > 0 ORDER BY e.order_id, e.id"
)
_ISSUED = "SELECT coalesce(max(id), 0) FROM orders"
_LAST_BATCH = "SELECT coalesce(max(id), 0) FROM batches"
#: Executions from the newest back, before id $1, $2 of them, with the
#: symbol of their order (looked up by key for those rows only: a join
#: would read every order).
_FILLS_BEFORE = (
    "SELECT id, (SELECT symbol FROM orders WHERE orders.id = order_id), "
    "CAST(shares AS text), CAST(price AS text), CAST(extract(epoch FROM executed_at) AS bigint) "
    "FROM executions WHERE id < $1 ORDER BY id DESC LIMIT $2"
)
#: The newest $3 executions of the orders of each symbol in $1, before
#: execution id $2, newest first per symbol.
_SYMBOL_FILLS_BEFORE = (
    "SELECT id, symbol, shares, price, executed_at FROM ("
    "SELECT e.id, o.symbol, CAST(e.shares AS text) AS shares, CAST(e.price AS text) AS price, "
    "CAST(extract(epoch FROM e.executed_at) AS bigint) AS executed_at, "
    "row_number() OVER (PARTITION BY o.symbol ORDER BY e.id DESC) AS newness "
    "FROM orders o JOIN executions e ON e.order_id = o.id "
    "WHERE o.symbol = ANY($1::text[]) AND e.id < $2) AS fills "
    "WHERE newness <= $3 ORDER BY symbol, id DESC"
)
#: Chunks of the newest executions read before the symbols still short of
#: trades are looked up one by one.
SCAN_CHUNKS = 4
_EXECUTIONS_END = "SELECT coalesce(max(id), 0) + 1 FROM executions"


class _Numbers(dict[str, Decimal]):
    """One ``Decimal`` per distinct text: prices and share counts repeat
    across orders, and a shared object costs neither the parsing nor the
    memory again."""

    def __missing__(self, text: str) -> Decimal:
        value = self[text] = Decimal(text)
        return value


class _Texts(dict[str, str]):
    """One string object per distinct account id or symbol, for the same
    reason (and an identical key is the fastest to look up)."""

    def __missing__(self, text: str) -> str:
        self[text] = text
        return text


@dataclass(frozen=True, slots=True)
class LiveState:
    """What recovery reads: the change set of the live state (open orders
    and their fills, deposits summed per symbol), the highest order id
    issued, each symbol's recent trades and the last batch id."""

    stored: ChangeSet
    issued: int
    trades: dict[str, tuple[Trade, ...]]
    last_batch_id: int


async def load_state(database: AsyncEngine) -> LiveState:
    """The exchange's live state as last committed, read in one
    repeatable-read snapshot."""
    async with (
        pooled_session(database) as session,
        session.transaction(isolation="repeatable_read", readonly=True),
    ):
        return await _read(session)


async def _read(session: Any) -> LiveState:
    sequences = [SequenceRow(*row) for row in await session.fetch(_SYMBOLS)]
    symbols = [row.symbol for row in sequences]
    accounts = [AccountRow(*row) for row in await session.fetch(_ACCOUNTS)]
    positions = [PositionRow(*row) for row in await session.fetch(_POSITIONS)]
    number, text = _Numbers(), _Texts()
    orders = [
        OrderRow(
            order_id,
            text[account],
            text[symbol],
            number[amount],
            number[limit],
            number[open_],
            ZERO,
            None,
            created,
        )
        for order_id, account, symbol, amount, limit, open_, created in await session.fetch(
            _OPEN_ORDERS
        )
    ]
    executions = [
        ExecutionRow(order_id, Execution(number[shares], number[price], time))
        for order_id, shares, price, time in await session.fetch(_OPEN_ORDER_FILLS)
    ]
    deposits = [DepositRow(*row) for row in await session.fetch(_DEPOSITS)]
    stored = ChangeSet(symbols, accounts, positions, orders, executions, deposits, sequences)
    return LiveState(
        stored,
        int(await session.fetchval(_ISSUED)),
        await _recent_trades(session, symbols),
        int(await session.fetchval(_LAST_BATCH)),
    )


async def _recent_trades(session: Any, symbols: list[str]) -> dict[str, tuple[Trade, ...]]:
    """Each symbol's last ``RECENT_TRADES`` trades. A fill is two
    consecutive executions, one per order (of the same symbol), the first
    of which is the trade: counted from the newest back, every second row.

    The newest executions are read a chunk at a time, up to
    ``SCAN_CHUNKS`` chunks; the symbols still short then (ones that
    trade rarely, or never) are looked up through their orders, in one
    statement (one pass over ``orders``) that keeps the newest rows of each."""
    recent = RecentTrades(symbols)
    before = await session.fetchval(_EXECUTIONS_END)
    chunk = 2 * RECENT_TRADES * max(1, len(symbols))
    for _ in range(SCAN_CHUNKS):
        rows = await session.fetch(_FILLS_BEFORE, before, chunk)
        if _note_trades(recent, rows) or len(rows) < chunk:
            return recent.trades()
        before = rows[-1][0]
    rows = await session.fetch(_SYMBOL_FILLS_BEFORE, recent.wanting(), before, 2 * RECENT_TRADES)
    for _, per_symbol in groupby(rows, key=itemgetter(1)):
        _note_trades(recent, list(per_symbol))
    return recent.trades()


def _note_trades(recent: RecentTrades, newest_first: list[Any]) -> bool:
    """Note every second row of ``newest_first`` (an even number of rows
    after the newest execution) as a trade; True once every symbol has its share."""
    for index, (_, symbol, shares, price, time) in enumerate(newest_first):
        if index % 2 and recent.add(symbol, Execution(Decimal(shares), Decimal(price), time)):
            return True
    return False
