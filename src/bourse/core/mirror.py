"""A copy of the public market, kept from committed market data alone.

Every process that serves the market-data feed holds one: it starts from a
``MarketSnapshot`` and applies each ``MarketUpdate`` in commit order, and
so holds what the published messages add up to (the exchange holds one
too, of what it has cut, to number its messages and answer snapshots).

Each side keeps a dict from price to shares and the ascending list of
those prices (kept sorted by bisection, as the books are), so the best
levels to any depth are read off without sorting.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable
from decimal import Decimal
from itertools import islice

from bourse.core.market import (
    RECENT_TRADES,
    BookChange,
    Level,
    MarketMessage,
    MarketSnapshot,
    MarketUpdate,
    Side,
    SymbolState,
    SymbolSummary,
    Trade,
)
from bourse.core.money import ZERO


class _Levels:
    """One side's levels: shares per price, prices ascending."""

    __slots__ = ("is_bid", "prices", "shares")

    def __init__(self, *, is_bid: bool, levels: Iterable[Level] = ()) -> None:
        self.is_bid = is_bid
        self.shares = {level.price: level.shares for level in levels}
        self.prices = sorted(self.shares)

    def set(self, price: Decimal, shares: Decimal) -> None:
        """The level at ``price`` now holds ``shares`` (zero: it is gone)."""
        known = price in self.shares
        if shares:
            self.shares[price] = shares
            if not known:
                insort(self.prices, price)
        elif known:
            del self.shares[price]
            del self.prices[bisect_left(self.prices, price)]

    def best(self) -> Decimal | None:
        """The best price, None when the side is empty."""
        if not self.prices:
            return None
        return self.prices[-1] if self.is_bid else self.prices[0]

    def levels(self, depth: int | None) -> tuple[Level, ...]:
        """The ``depth`` best levels (all when None), best first."""
        prices = self.prices
        if depth is None or depth > len(prices):
            depth = len(prices)
        chosen = reversed(prices[len(prices) - depth :]) if self.is_bid else prices[:depth]
        return tuple(Level(price, self.shares[price]) for price in chosen)


class _Symbol:
    """One symbol's levels, recent trades and the ``seq`` of its last message."""

    __slots__ = ("asks", "bids", "seq", "symbol", "trades")

    def __init__(self, state: SymbolState, recent_trades: int) -> None:
        self.symbol = state.symbol
        self.seq = state.seq
        self.bids = _Levels(is_bid=True, levels=state.bids)
        self.asks = _Levels(is_bid=False, levels=state.asks)
        self.trades = deque(state.trades, maxlen=recent_trades)

    def side(self, side: Side) -> _Levels:
        return self.bids if side == "buy" else self.asks

    def apply(self, message: MarketMessage) -> None:
        if isinstance(message, BookChange):
            bids, asks = self.bids, self.asks
            for change in message.changes:
                (bids if change.side == "buy" else asks).set(change.price, change.shares)
        else:
            self.trades.append(message)
        self.seq = message.seq

    def state(self, depth: int | None) -> SymbolState:
        return SymbolState(
            self.symbol,
            self.seq,
            self.bids.levels(depth),
            self.asks.levels(depth),
            tuple(self.trades),
        )


class MarketMirror:
    """Every symbol's levels, recent trades (at most ``recent_trades``) and
    ``seq``, as the messages applied so far make them."""

    def __init__(self, recent_trades: int = RECENT_TRADES) -> None:
        self._recent_trades = recent_trades
        self._symbols: dict[str, _Symbol] = {}

    def reset(self, snapshot: MarketSnapshot) -> None:
        """Hold exactly ``snapshot``, forgetting everything before."""
        self._symbols = {
            state.symbol: _Symbol(state, self._recent_trades) for state in snapshot.symbols
        }

    def apply(self, update: MarketUpdate) -> None:
        """Add the update's new symbols and apply its messages.

        Raises ``ValueError``, applying nothing, when a message's ``seq`` is
        not its symbol's ``seq`` plus one or its symbol is unknown: the
        updates were not applied in order, each once, after the snapshot
        (a bug upstream; the mirror needs a new snapshot).
        """
        self._check_sequence(update)
        for symbol in update.symbols:
            if symbol not in self._symbols:
                self._symbols[symbol] = _Symbol(
                    SymbolState(symbol, 0, (), (), ()), self._recent_trades
                )
        symbols = self._symbols
        for message in update.messages:
            symbols[message.symbol].apply(message)

    def _check_sequence(self, update: MarketUpdate) -> None:
        last: dict[str, int] = {}
        for message in update.messages:
            symbol = message.symbol
            seq = last.get(symbol)
            if seq is None:
                seq = self._seq_before(symbol, update.symbols)
            if message.seq != seq + 1:
                raise ValueError(f"{symbol}: message {message.seq} follows {seq}")
            last[symbol] = message.seq

    def _seq_before(self, symbol: str, new_symbols: tuple[str, ...]) -> int:
        known = self._symbols.get(symbol)
        if known is not None:
            return known.seq
        if symbol in new_symbols:
            return 0
        raise ValueError(f"{symbol}: a message for an unknown symbol")

    def symbols(self) -> tuple[SymbolSummary, ...]:
        """Every symbol's last price and best bid and ask, by symbol."""
        return tuple(
            SymbolSummary(
                symbol,
                state.trades[-1].price if state.trades else None,
                state.bids.best(),
                state.asks.best(),
            )
            for symbol, state in sorted(self._symbols.items())
        )

    def state(self, symbol: str, depth: int | None = None) -> SymbolState | None:
        """``symbol``'s levels (at most ``depth`` per side, best first), recent
        trades and ``seq``; None for an unknown symbol."""
        if depth is not None and depth < 0:
            raise ValueError(f"depth {depth} is negative")
        known = self._symbols.get(symbol)
        return None if known is None else known.state(depth)

    def snapshot(self) -> MarketSnapshot:
        """Every symbol's whole state, by symbol."""
        return MarketSnapshot(
            tuple(self._symbols[symbol].state(None) for symbol in sorted(self._symbols))
        )

    def trades(self, symbol: str, limit: int) -> tuple[Trade, ...] | None:
        """``symbol``'s last ``limit`` trades, newest last; None for an
        unknown symbol."""
        known = self._symbols.get(symbol)
        if known is None:
            return None
        trades = known.trades
        return tuple(islice(trades, max(0, len(trades) - max(0, limit)), None))

    def seq(self, symbol: str) -> int | None:
        """The ``seq`` of ``symbol``'s last message; None for an unknown symbol."""
        known = self._symbols.get(symbol)
        return None if known is None else known.seq

    def shares_at(self, symbol: str, side: Side, price: Decimal) -> Decimal:
        """The shares of ``symbol``'s level at ``price`` on ``side`` (zero
        when there is none, or no such symbol)."""
        known = self._symbols.get(symbol)
        return ZERO if known is None else known.side(side).shares.get(price, ZERO)

    def last_price(self, symbol: str) -> Decimal | None:
        """The price of ``symbol``'s last trade; None when it never traded
        (or is unknown)."""
        known = self._symbols.get(symbol)
        return known.trades[-1].price if known is not None and known.trades else None
