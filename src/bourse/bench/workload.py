"""Seeded, realistic request streams for benchmarks and load tests.

Orders are drawn around a per-symbol mid price that drifts on a tick grid,
so that many cross (and fill, often partially) while others rest; a share
of the stream queries or cancels the account's own earlier orders. Streams
are generated from a seed before any clock starts, so every run of a
benchmark replays the same work.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from bourse.core.commands import (
    AddShares,
    CancelOrder,
    CreateAccount,
    CreateRequest,
    PlaceOrder,
    QueryOrder,
    TransactionCommand,
    TransactionsRequest,
)

TICK = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class WorkloadShape:
    """The knobs of a generated stream."""

    accounts: int = 1000
    symbols: int = 10
    requests: int = 100_000
    orders_per_request: int = 1
    query_share: float = 0.1
    cancel_share: float = 0.1
    spread_ticks: int = 20
    balance: Decimal = Decimal(10_000_000)
    shares: Decimal = Decimal(1_000_000)


def setup_request(shape: WorkloadShape) -> CreateRequest:
    """Every account with cash, and shares of every symbol."""
    accounts = [CreateAccount(str(a), shape.balance) for a in range(1, shape.accounts + 1)]
    positions = [
        AddShares(symbol_name(s), str(a), shape.shares)
        for s in range(shape.symbols)
        for a in range(1, shape.accounts + 1)
    ]
    return CreateRequest((*accounts, *positions))


def symbol_name(index: int) -> str:
    """The name of the ``index``-th generated symbol."""
    return f"S{index}"


class _Stream:
    """State of one generated stream: mid prices and orders placed so far."""

    def __init__(self, shape: WorkloadShape, seed: int) -> None:
        self.shape = shape
        self.rng = random.Random(seed)
        self.mids = [100 * 100 + self.rng.randrange(-500, 500) for _ in range(shape.symbols)]
        self.placed: dict[str, list[int]] = {}
        self.orders_issued = 0

    def command(self, account_id: str) -> TransactionCommand:
        rng = self.rng
        roll = rng.random()
        own = self.placed.get(account_id)
        if own and roll < self.shape.query_share:
            order_id = rng.choice(own)
            return QueryOrder(order_id, (("id", str(order_id)),))
        if own and roll < self.shape.query_share + self.shape.cancel_share:
            order_id = own.pop(rng.randrange(len(own)))
            return CancelOrder(order_id, (("id", str(order_id)),))
        return self.order(account_id)

    def order(self, account_id: str) -> PlaceOrder:
        rng = self.rng
        index = rng.randrange(self.shape.symbols)
        self.mids[index] = max(100, self.mids[index] + rng.choice((-1, 0, 0, 1)))
        buying = rng.random() < 0.5
        offset = rng.randrange(-self.shape.spread_ticks // 2, self.shape.spread_ticks + 1)
        ticks = self.mids[index] - offset if buying else self.mids[index] + offset
        limit = Decimal(max(1, ticks)) * TICK
        size = rng.randrange(1, 200)
        amount = Decimal(size if buying else -size)
        symbol = symbol_name(index)
        self.orders_issued += 1
        self.placed.setdefault(account_id, []).append(self.orders_issued)
        return PlaceOrder(
            symbol, amount, limit, (("sym", symbol), ("amount", str(amount)), ("limit", str(limit)))
        )


def transaction_stream(shape: WorkloadShape, seed: int) -> list[TransactionsRequest]:
    """``shape.requests`` transactions from random accounts, in one order.

    Order ids in queries and cancels assume the stream is applied alone to a
    fresh exchange set up with ``setup_request``, where ids count from 1 and
    every order opens (balances and positions are ample).
    """
    stream = _Stream(shape, seed)
    requests = []
    for _ in range(shape.requests):
        account_id = str(stream.rng.randrange(1, shape.accounts + 1))
        commands = tuple(stream.command(account_id) for _ in range(shape.orders_per_request))
        requests.append(TransactionsRequest(account_id, commands))
    return requests
