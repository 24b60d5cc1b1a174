"""Short constructors for requests, so engine tests read like the protocol."""

from __future__ import annotations

from decimal import Decimal

from bourse.core.commands import (
    AddShares,
    CancelOrder,
    CreateAccount,
    CreateCommand,
    CreateRequest,
    PlaceOrder,
    QueryOrder,
    TransactionCommand,
    TransactionsRequest,
)


def account(account_id: str, balance: str) -> CreateAccount:
    return CreateAccount(account_id, Decimal(balance))


def shares(symbol: str, account_id: str, count: str) -> AddShares:
    return AddShares(symbol, account_id, Decimal(count))


def order(symbol: str, amount: str, limit: str) -> PlaceOrder:
    return PlaceOrder(
        symbol,
        Decimal(amount),
        Decimal(limit),
        (("sym", symbol), ("amount", amount), ("limit", limit)),
    )


def query(order_id: int) -> QueryOrder:
    return QueryOrder(order_id, (("id", str(order_id)),))


def cancel(order_id: int) -> CancelOrder:
    return CancelOrder(order_id, (("id", str(order_id)),))


def create(*commands: CreateCommand) -> CreateRequest:
    return CreateRequest(commands)


def transactions(account_id: str, *commands: TransactionCommand) -> TransactionsRequest:
    return TransactionsRequest(account_id, commands)
