"""Order books: resting orders per symbol, best price first, FIFO per price.

Each side keeps a dict from price to a level (an ``OrderedDict`` of the
orders resting at that price, in arrival order) and a sorted list of level
keys whose last element is the best price. Reaching the best order is O(1),
adding a new price level is a binary search, and a cancel removes an order
by id without scanning its level.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import OrderedDict
from decimal import Decimal

from bourse.core.results import Execution, OrderState


class Order:
    """A limit order and its history. ``amount`` is signed as on the wire;
    ``open_shares`` and ``canceled_shares`` are positive counts."""

    __slots__ = (
        "account_id",
        "amount",
        "canceled_at",
        "canceled_shares",
        "created_at",
        "executions",
        "is_buy",
        "limit",
        "open_shares",
        "order_id",
        "symbol",
    )

    def __init__(
        self,
        order_id: int,
        account_id: str,
        symbol: str,
        amount: Decimal,
        limit: Decimal,
        created_at: int,
    ) -> None:
        self.order_id = order_id
        self.account_id = account_id
        self.symbol = symbol
        self.amount = amount
        self.limit = limit
        self.created_at = created_at
        self.is_buy = amount > 0
        self.open_shares = amount if self.is_buy else amount.copy_negate()
        self.canceled_shares = Decimal(0)
        self.canceled_at: int | None = None
        self.executions: list[Execution] = []

    def state(self) -> OrderState:
        """An immutable snapshot of the order's history."""
        return OrderState(
            order_id=self.order_id,
            open_shares=self.open_shares,
            canceled_shares=self.canceled_shares,
            canceled_at=self.canceled_at,
            executions=tuple(self.executions),
        )


Level = OrderedDict[int, Order]


class Side:
    """One side of a book. Level keys sort ascending with the best price
    last: the price itself for bids, its negation for asks."""

    __slots__ = ("is_bid", "keys", "levels")

    def __init__(self, *, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.levels: dict[Decimal, Level] = {}
        self.keys: list[Decimal] = []

    def _key(self, price: Decimal) -> Decimal:
        return price if self.is_bid else price.copy_negate()

    def best_price(self) -> Decimal | None:
        """The best price resting on this side, or None when it is empty."""
        if not self.keys:
            return None
        key = self.keys[-1]
        return key if self.is_bid else key.copy_negate()

    def add(self, order: Order) -> None:
        """Rest ``order`` behind everything already at its price."""
        level = self.levels.get(order.limit)
        if level is None:
            level = OrderedDict()
            self.levels[order.limit] = level
            insort(self.keys, self._key(order.limit))
        level[order.order_id] = order

    def remove(self, order: Order) -> None:
        """Take ``order`` off the book (it must be resting here)."""
        level = self.levels[order.limit]
        del level[order.order_id]
        if not level:
            self.drop_level(order.limit)

    def drop_level(self, price: Decimal) -> None:
        """Forget the (now empty) level at ``price``."""
        del self.levels[price]
        key = self._key(price)
        if self.keys[-1] == key:
            self.keys.pop()
        else:
            del self.keys[bisect_left(self.keys, key)]

    def orders(self) -> list[Order]:
        """Every resting order, best price first, FIFO within a price."""
        return [
            order
            for key in reversed(self.keys)
            for order in self.levels[key if self.is_bid else key.copy_negate()].values()
        ]


class Book:
    """Both sides of one symbol's book."""

    __slots__ = ("asks", "bids", "symbol")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids = Side(is_bid=True)
        self.asks = Side(is_bid=False)

    def side_of(self, order: Order) -> Side:
        """The side ``order`` rests on."""
        return self.bids if order.is_buy else self.asks

    def is_crossed(self) -> bool:
        """True when the best bid reaches the best ask (never after a request)."""
        bid, ask = self.bids.best_price(), self.asks.best_price()
        return bid is not None and ask is not None and bid >= ask
