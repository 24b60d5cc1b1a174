"""The invariants of an exchange's whole state, checked.

Tests run this after every request of random order streams, and benchmarks
after every run they time: conservation of cash and of each symbol's
shares, consistent order histories, nothing negative, no crossed book.
It returns the violations as sentences; an empty list means all is well.
"""

from __future__ import annotations

from decimal import Decimal

from bourse.core.book import Order
from bourse.core.exchange import Exchange
from bourse.core.money import MONEY, ZERO


def audit(exchange: Exchange) -> list[str]:
    """Every invariant of the exchange that ``exchange`` breaks, as text."""
    return [
        *_cash_conserved(exchange),
        *_shares_conserved(exchange),
        *(problem for order in exchange.orders.values() for problem in _order_consistent(order)),
        *_nothing_negative(exchange),
        *_books_match_orders(exchange),
        *_open_orders_counted(exchange),
    ]


def _open_orders_counted(exchange: Exchange) -> list[str]:
    counted = dict.fromkeys(exchange.ledger.accounts, 0)
    for order in exchange.orders.values():
        if order.open_shares:
            counted[order.account_id] += 1
    return [
        f"account {account_id}: {account.open_orders} open orders counted, "
        f"{counted[account_id]} open"
        for account_id, account in exchange.ledger.accounts.items()
        if account.open_orders != counted[account_id]
    ]


def _cash_conserved(exchange: Exchange) -> list[str]:
    held = ZERO
    for order in exchange.orders.values():
        if order.is_buy and order.open_shares:
            held = MONEY.add(held, MONEY.multiply(order.open_shares, order.limit))
    free = ZERO
    for account in exchange.ledger.accounts.values():
        free = MONEY.add(free, account.balance)
    total = MONEY.add(free, held)
    if total != exchange.cash_deposited:
        return [f"cash: {free} free + {held} held != {exchange.cash_deposited} deposited"]
    return []


def _shares_conserved(exchange: Exchange) -> list[str]:
    totals: dict[str, Decimal] = dict.fromkeys(exchange.shares_created, ZERO)
    for account in exchange.ledger.accounts.values():
        for symbol, shares in account.positions.items():
            totals[symbol] = MONEY.add(totals.get(symbol, ZERO), shares)
    for order in exchange.orders.values():
        if not order.is_buy and order.open_shares:
            totals[order.symbol] = MONEY.add(totals.get(order.symbol, ZERO), order.open_shares)
    return [
        f"shares of {symbol}: {totals[symbol]} != {created} created"
        for symbol, created in exchange.shares_created.items()
        if totals[symbol] != created
    ] + [f"shares of unknown symbol {s}" for s in totals if s not in exchange.shares_created]


def _order_consistent(order: Order) -> list[str]:
    executed = ZERO
    for execution in order.executions:
        executed = MONEY.add(executed, execution.shares)
    size = abs(order.amount)
    accounted = MONEY.add(MONEY.add(order.open_shares, executed), order.canceled_shares)
    problems = []
    if accounted != size:
        problems.append(f"order {order.order_id}: open+executed+canceled {accounted} != {size}")
    if order.open_shares and order.canceled_shares:
        problems.append(f"order {order.order_id}: both open and canceled")
    if order.open_shares < 0 or order.canceled_shares < 0:
        problems.append(f"order {order.order_id}: negative shares")
    return problems


def _nothing_negative(exchange: Exchange) -> list[str]:
    problems = []
    for account in exchange.ledger.accounts.values():
        if account.balance < 0:
            problems.append(f"account {account.account_id}: negative balance")
        problems.extend(
            f"account {account.account_id}: negative {symbol}"
            for symbol, shares in account.positions.items()
            if shares < 0
        )
    return problems


def _books_match_orders(exchange: Exchange) -> list[str]:
    problems = [
        f"book {symbol} is crossed" for symbol, b in exchange.books.items() if b.is_crossed()
    ]
    resting = {
        order.order_id
        for book in exchange.books.values()
        for side in (book.bids, book.asks)
        for order in side.orders()
    }
    open_orders = {order.order_id for order in exchange.orders.values() if order.open_shares}
    if resting != open_orders:
        problems.append(f"books hold {sorted(resting ^ open_orders)} out of step with orders")
    return problems
