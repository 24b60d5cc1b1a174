"""Rebuilding an exchange from stored rows, exactly as it was.

The rows are the ones the exchange's change sets produced (see
``changes.py``), read back as one change set in their original order:
orders by id (arrival order, so resting orders regain their priority),
executions and deposits in the order they were written. The rebuilt
exchange starts with an empty journal: nothing in it needs writing again.

The market data continues too: the exchange's copy of the published
market is rebuilt from the books, each symbol's stored ``seq``, and its
recent trades: the last fills among the executions, where each fill is
two consecutive rows (one per order), so the first of each pair is the
trade. Their own message numbers are not stored: they come back as 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bourse.core.book import Book, Order, Side
from bourse.core.changes import ChangeSet, DepositRow, ExecutionRow, OrderRow, SequenceRow
from bourse.core.exchange import Exchange
from bourse.core.ledger import Account
from bourse.core.market import RECENT_TRADES, Level, MarketSnapshot, SymbolState, Trade
from bourse.core.money import MONEY, ZERO
from bourse.core.results import Execution


def restore_exchange(stored: ChangeSet) -> Exchange:
    """An exchange holding exactly the state that ``stored`` builds from nothing."""
    exchange = Exchange()
    for symbol in stored.symbols:
        exchange.books[symbol] = Book(symbol)
        exchange.shares_created[symbol] = ZERO
    ledger_accounts = exchange.ledger.accounts
    for account_row in stored.accounts:
        ledger_accounts[account_row.account_id] = Account(
            account_row.account_id, account_row.balance
        )
    for position in stored.positions:
        ledger_accounts[position.account_id].positions[position.symbol] = position.shares
    _restore_deposits(exchange, stored.deposits)
    _restore_orders(exchange, stored.orders)
    for execution_row in stored.executions:
        exchange.orders[execution_row.order_id].executions.append(execution_row.execution)
    exchange.first_uncut_order_id = exchange.next_order_id
    _restore_market(exchange, stored.sequences, stored.executions)
    return exchange


def _restore_deposits(exchange: Exchange, deposits: Iterable[DepositRow]) -> None:
    for deposit in deposits:
        if deposit.symbol is None:
            exchange.cash_deposited = MONEY.add(exchange.cash_deposited, deposit.amount)
        else:
            created = exchange.shares_created[deposit.symbol]
            exchange.shares_created[deposit.symbol] = MONEY.add(created, deposit.amount)


def _restore_orders(exchange: Exchange, rows: Iterable[OrderRow]) -> None:
    for row in rows:
        order = Order(
            row.order_id, row.account_id, row.symbol, row.amount, row.limit_price, row.created_at
        )
        order.open_shares = row.open_shares
        order.canceled_shares = row.canceled_shares
        order.canceled_at = row.canceled_at
        exchange.orders[order.order_id] = order
        if order.open_shares:
            book = exchange.books[order.symbol]
            book.side_of(order).add(order)
            exchange.ledger.accounts[order.account_id].open_orders += 1
        exchange.next_order_id = max(exchange.next_order_id, order.order_id + 1)


def _restore_market(
    exchange: Exchange, sequences: Iterable[SequenceRow], executions: Sequence[ExecutionRow]
) -> None:
    seqs = {row.symbol: row.seq for row in sequences}
    trades = _recent_trades(exchange, executions)
    exchange.market.reset(
        MarketSnapshot(
            tuple(
                SymbolState(
                    symbol,
                    seqs.get(symbol, 0),
                    _levels(book.bids),
                    _levels(book.asks),
                    trades[symbol],
                )
                for symbol, book in sorted(exchange.books.items())
            )
        )
    )


def _levels(side: Side) -> tuple[Level, ...]:
    """The side's levels, best first, each with its total open shares."""
    prices = reversed(side.keys) if side.is_bid else side.keys
    levels = []
    for price in prices:
        shares = ZERO
        for order in side.levels[price].values():
            shares = MONEY.add(shares, order.open_shares)
        levels.append(Level(price, shares))
    return tuple(levels)


def _recent_trades(
    exchange: Exchange, executions: Sequence[ExecutionRow]
) -> dict[str, tuple[Trade, ...]]:
    """Each symbol's last ``RECENT_TRADES`` fills, oldest first, read from
    the newest back until every symbol has its share."""
    found: dict[str, list[Execution]] = {symbol: [] for symbol in exchange.books}
    wanting = len(found)
    for index in range(len(executions) - 2, -1, -2):
        row = executions[index]
        trades = found[exchange.orders[row.order_id].symbol]
        if len(trades) < RECENT_TRADES:
            trades.append(row.execution)
            if len(trades) == RECENT_TRADES:
                wanting -= 1
                if not wanting:
                    break
    return {
        symbol: tuple(
            Trade(symbol, 0, execution.price, execution.shares, execution.time)
            for execution in reversed(trades)
        )
        for symbol, trades in found.items()
    }
