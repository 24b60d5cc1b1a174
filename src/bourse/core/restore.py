"""Rebuilding an exchange from stored rows, exactly as it was.

The rows are the ones the exchange's change sets produced (see
``changes.py``), read back as one change set in their original order:
orders by id (arrival order, so resting orders regain their priority),
executions and deposits in the order they were written. The rebuilt exchange starts with an empty
journal: nothing in it needs writing again.
"""

from __future__ import annotations

from collections.abc import Iterable

from bourse.core.book import Book, Order
from bourse.core.changes import ChangeSet, DepositRow, OrderRow
from bourse.core.exchange import Exchange
from bourse.core.ledger import Account
from bourse.core.money import MONEY, ZERO


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
