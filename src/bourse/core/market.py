"""Market data: what the public may see of the books and the trades.

After each batch commits, the engine publishes what the batch changed in
the market as one ``MarketUpdate``: per symbol, its trades in the order
they happened, then one ``BookChange`` with the new total of every price
level the batch touched (``0`` removes a level). Every message of a symbol
carries the next number of that symbol's ``seq``, with no gap, so a
subscriber that applies a snapshot and then every message after its
``seq`` holds the book exactly; one that sees a gap asks for a snapshot
again. The update also carries each account's order events (opened, each
fill, canceled) for the private ``orders`` channel.

Levels are aggregated: a level is a price and the shares resting there,
never the orders behind them. Prices and shares are exact decimals.

Nothing here is mutated once made. The four kinds made for every batch
(level changes, book changes, trades, order events) are plain slotted
dataclasses rather than frozen ones all the same: the engine makes them
for every fill, and a frozen constructor costs ten times as much.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

Side = Literal["buy", "sell"]
OrderEventKind = Literal["opened", "fill", "canceled"]

#: Trades of each symbol kept for snapshots and ``/api/trades``.
RECENT_TRADES = 1000


@dataclass(frozen=True, slots=True)
class Level:
    """A price level: the shares resting at ``price`` on one side."""

    price: Decimal
    shares: Decimal


@dataclass(slots=True)
class LevelChange:
    """A level's new total on ``side``; ``shares`` zero removes it."""

    side: Side
    price: Decimal
    shares: Decimal


@dataclass(slots=True)
class BookChange:
    """Message ``book``: the levels one batch touched in ``symbol``."""

    symbol: str
    seq: int
    changes: tuple[LevelChange, ...]


@dataclass(slots=True)
class Trade:
    """Message ``trade``: one fill, at the resting order's price; ``time``
    in epoch seconds, as in ``<executed>``. A trade rebuilt from the
    database after a restart has ``seq`` 0: message numbers of past trades
    are not stored (only each symbol's last one is)."""

    symbol: str
    seq: int
    price: Decimal
    shares: Decimal
    time: int


MarketMessage = BookChange | Trade


@dataclass(slots=True)
class OrderEvent:
    """One step of an account's order, for the private channel.

    ``shares`` is the order's whole size when opened, the shares filled
    for a fill, the shares canceled for a cancel; ``price`` is the limit,
    except for a fill, where it is the execution price. ``open_shares`` is
    what remains open after the event.
    """

    account_id: str
    order_id: int
    symbol: str
    kind: OrderEventKind
    amount: Decimal
    limit: Decimal
    shares: Decimal
    price: Decimal
    open_shares: Decimal
    time: int


@dataclass(frozen=True, slots=True)
class MarketUpdate:
    """What one committed batch changed in the market."""

    #: Symbols the batch created, in order.
    symbols: tuple[str, ...]
    #: Each symbol's messages in ``seq`` order (its trades, then its book change).
    messages: tuple[MarketMessage, ...]
    #: Order events, in the order they happened.
    orders: tuple[OrderEvent, ...]
    #: When the engine saw the batch's commit return (epoch seconds; 0 until then).
    committed: float = 0.0


#: The update of a batch that changed nothing in the market.
NO_MARKET_CHANGE = MarketUpdate((), (), ())


@dataclass(frozen=True, slots=True)
class SymbolState:
    """One symbol's whole public state: levels best first, recent trades
    oldest first (at most ``RECENT_TRADES``), and the ``seq`` of the last
    message they include."""

    symbol: str
    seq: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    trades: tuple[Trade, ...]


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """Every symbol's state: what a mirror starts from, or starts again
    from after the engine was rebuilt."""

    symbols: tuple[SymbolState, ...]


@dataclass(frozen=True, slots=True)
class SymbolSummary:
    """A symbol at a glance: its last trade price and best bid and ask
    (None where there is none)."""

    symbol: str
    last_price: Decimal | None
    best_bid: Decimal | None
    best_ask: Decimal | None


@dataclass(frozen=True, slots=True)
class Standing:
    """An account on the leaderboard: its cash (free and held by open
    buys), and that plus every position (shares held by open sells
    included) at its symbol's last trade price. Shares of a symbol that
    never traded count at zero: there is no price to value them at."""

    account_id: str
    cash: Decimal
    value: Decimal
