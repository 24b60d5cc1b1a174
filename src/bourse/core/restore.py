"""Rebuilding an exchange from stored rows, as it was where it can change.

The rows are the ones the exchange's change sets produced (see
``changes.py``), read back as one change set in their original order:
orders by id (arrival order, so resting orders regain their priority),
executions and deposits in the order they were written. Only open orders
are rebuilt, with their fills: a closed order never changes again, and a
query of it is answered from the stored orders (``lookup.py``). So the
change set may hold just the open orders and their executions, and
deposits summed per symbol; ``issued`` then says the highest order id
ever handed out (ids are never handed out twice), and ``trades`` each
symbol's recent trades. The rebuilt exchange starts with an empty
journal: nothing in it needs writing again.

The market data continues too: the exchange's copy of the published
market is rebuilt from the books, each symbol's stored ``seq``, and its
recent trades: when not given, the last fills among the executions, where
each fill is two consecutive rows (one per order), so the first of each
pair is the trade. Their own message numbers are not stored: they come
back as 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from bourse.core.book import Book, Order, Side
from bourse.core.changes import ChangeSet, DepositRow, ExecutionRow, OrderRow, SequenceRow
from bourse.core.exchange import Exchange
from bourse.core.ledger import Account
from bourse.core.market import RECENT_TRADES, Level, MarketSnapshot, SymbolState, Trade
from bourse.core.money import MONEY, ZERO
from bourse.core.results import Execution


def restore_exchange(
    stored: ChangeSet,
    *,
    issued: int = 0,
    trades: Mapping[str, tuple[Trade, ...]] | None = None,
) -> Exchange:
    """An exchange holding the live state that ``stored`` builds from
    nothing: its open orders, handing out ids above ``issued`` and above
    every order of ``stored``."""
    exchange = Exchange()
    exchange.next_order_id = issued + 1
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
    orders = exchange.orders
    for execution_row in stored.executions:
        order = orders.get(execution_row.order_id)
        if order is not None:
            order.executions.append(execution_row.execution)
    exchange.first_uncut_order_id = exchange.next_order_id
    if trades is None:
        trades = _recent_trades(exchange.books, stored.orders, stored.executions)
    _restore_market(exchange, stored.sequences, trades)
    return exchange


def _restore_deposits(exchange: Exchange, deposits: Iterable[DepositRow]) -> None:
    for deposit in deposits:
        if deposit.symbol is None:
            exchange.cash_deposited = MONEY.add(exchange.cash_deposited, deposit.amount)
        else:
            created = exchange.shares_created[deposit.symbol]
            exchange.shares_created[deposit.symbol] = MONEY.add(created, deposit.amount)


def _restore_orders(exchange: Exchange, rows: Iterable[OrderRow]) -> None:
    """Rest the open orders in arrival order; note the highest id."""
    next_order_id = exchange.next_order_id
    orders = exchange.orders
    accounts = exchange.ledger.accounts
    books = exchange.books
    for row in rows:
        if row.order_id >= next_order_id:
            next_order_id = row.order_id + 1
        if not row.open_shares:
            continue
        order = Order(
            row.order_id, row.account_id, row.symbol, row.amount, row.limit_price, row.created_at
        )
        order.open_shares = row.open_shares
        orders[order.order_id] = order
        books[order.symbol].side_of(order).add(order)
        accounts[order.account_id].open_orders += 1
    exchange.next_order_id = next_order_id


def _restore_market(
    exchange: Exchange,
    sequences: Iterable[SequenceRow],
    trades: Mapping[str, tuple[Trade, ...]],
) -> None:
    seqs = {row.symbol: row.seq for row in sequences}
    exchange.market.reset(
        MarketSnapshot(
            tuple(
                SymbolState(
                    symbol,
                    seqs.get(symbol, 0),
                    _levels(book.bids),
                    _levels(book.asks),
                    trades.get(symbol, ()),
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
    books: Iterable[str], orders: Iterable[OrderRow], executions: Sequence[ExecutionRow]
) -> dict[str, tuple[Trade, ...]]:
    """Each symbol's last ``RECENT_TRADES`` fills, oldest first, read from
    the newest back until every symbol has its share."""
    symbols = {row.order_id: row.symbol for row in orders}
    recent = RecentTrades(books)
    for index in range(len(executions) - 2, -1, -2):
        row = executions[index]
        if recent.add(symbols[row.order_id], row.execution):
            break
    return recent.trades()


class RecentTrades:
    """Each symbol's last ``RECENT_TRADES`` trades, gathered newest first."""

    def __init__(self, symbols: Iterable[str]) -> None:
        self._found: dict[str, list[Execution]] = {symbol: [] for symbol in symbols}
        self._wanting = len(self._found)

    @property
    def complete(self) -> bool:
        """True once every symbol has its share."""
        return not self._wanting

    def wanting(self) -> list[str]:
        """The symbols still short of their share."""
        return [symbol for symbol, trades in self._found.items() if len(trades) < RECENT_TRADES]

    def add(self, symbol: str, execution: Execution) -> bool:
        """Note the trade older than those noted so far; True once complete."""
        trades = self._found[symbol]
        if len(trades) < RECENT_TRADES:
            trades.append(execution)
            if len(trades) == RECENT_TRADES:
                self._wanting -= 1
        return not self._wanting

    def trades(self) -> dict[str, tuple[Trade, ...]]:
        """The trades noted, oldest first, per symbol."""
        return {
            symbol: tuple(
                Trade(symbol, 0, execution.price, execution.shares, execution.time)
                for execution in reversed(trades)
            )
            for symbol, trades in self._found.items()
        }
