"""Order books: resting orders per symbol, best price first, FIFO per price.

Each side keeps a dict from price to a level (an ``OrderedDict`` of the
orders resting at that price, in arrival order) and the ascending list of
level prices. The best order is reached in O(1), a level is found by
binary search, and a cancel removes an order by id without scanning its
level.

Levels are found by bisecting that list, never by hashing the order's
price: the price is a fresh ``Decimal`` from the request, and hashing a
fractional ``Decimal`` costs more than a dozen comparisons. The stored
price, whose hash is cached, then keys ``levels``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from decimal import Decimal

from bourse.core.money import ZERO
from bourse.core.results import Execution, FillHistory, OrderState


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
        self.is_buy = is_buy = amount > ZERO
        self.open_shares = amount if is_buy else amount.copy_negate()
        self.limit = limit
        self.created_at = created_at
        self.canceled_shares = ZERO
        self.canceled_at: int | None = None
        self.executions: list[Execution] = []

    def state(self) -> OrderState:
        """An immutable snapshot of the order's history."""
        # positional: keyword arguments triple the cost of a dataclass constructor
        return OrderState(
            self.order_id,
            self.open_shares,
            self.canceled_shares,
            self.canceled_at,
            FillHistory(self.executions),
        )


Level = OrderedDict[int, Order]


class Side:
    """One side of a book. ``keys`` holds the price of every level in
    ascending order, so the best price is last for bids and first for asks
    (``keys[best_index]``); each is the very object that keys ``levels``."""

    __slots__ = ("best_index", "is_bid", "keys", "levels")

    def __init__(self, *, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.levels: dict[Decimal, Level] = {}
        self.keys: list[Decimal] = []
        self.best_index = -1 if is_bid else 0

    def best_price(self) -> Decimal | None:
        """The best price resting on this side, or None when it is empty."""
        return self.keys[self.best_index] if self.keys else None

    def add(self, order: Order) -> None:
        """Rest ``order`` behind everything already at its price."""
        keys = self.keys
        limit = order.limit
        index = bisect_left(keys, limit)
        if index < len(keys) and keys[index] == limit:
            level = self.levels[keys[index]]
        else:
            level = self.levels[limit] = OrderedDict()
            keys.insert(index, limit)
        level[order.order_id] = order

    def remove(self, order: Order) -> None:
        """Take ``order`` off the book (it must be resting here)."""
        price = self.keys[bisect_left(self.keys, order.limit)]
        level = self.levels[price]
        del level[order.order_id]
        if not level:
            self.drop_level(price)

    def drop_level(self, price: Decimal) -> None:
        """Forget the (now empty) level at ``price``."""
        del self.levels[price]
        del self.keys[bisect_left(self.keys, price)]

    def drop_best_level(self) -> None:
        """Forget the (now empty) level at the best price."""
        del self.levels[self.keys.pop(self.best_index)]

    def orders(self) -> list[Order]:
        """Every resting order, best price first, FIFO within a price."""
        prices = reversed(self.keys) if self.is_bid else self.keys
        return [order for price in prices for order in self.levels[price].values()]


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
