"""The feed's bulk messages are formatted by hand for speed: whatever the
symbol, seq, prices, shares and commit time, the text must be exactly the
compact JSON ``encode`` makes of the same message."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from bourse.core.market import BookChange, LevelChange, Trade
from bourse.core.money import format_decimal
from bourse.server.feed_wire import encode, message_text

symbols = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    min_size=1,
    max_size=12,
)
decimals = st.decimals(min_value=0, max_value=10**12, places=6, allow_nan=False)
seqs = st.integers(min_value=0, max_value=2**53)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)
levels = st.builds(LevelChange, st.sampled_from(["buy", "sell"]), decimals, decimals)


@given(symbols, seqs, decimals, decimals, st.integers(min_value=0, max_value=2**40), times)
def test_a_trade_text_is_its_json(
    symbol: str, seq: int, price: Decimal, shares: Decimal, time: int, committed: float
) -> None:
    trade = Trade(symbol, seq, price, shares, time)
    expected = {
        "type": "trade",
        "symbol": symbol,
        "seq": seq,
        "price": format_decimal(price),
        "shares": format_decimal(shares),
        "time": time,
        "committed": round(committed, 6),
    }
    assert message_text(trade, committed) == encode(expected)


@given(symbols, seqs, st.lists(levels, max_size=5), times)
def test_a_book_text_is_its_json(
    symbol: str, seq: int, changes: list[LevelChange], committed: float
) -> None:
    change = BookChange(symbol, seq, tuple(changes))
    rows = [[c.side, format_decimal(c.price), format_decimal(c.shares)] for c in changes]
    expected = {
        "type": "book",
        "symbol": symbol,
        "seq": seq,
        "changes": rows,
        "committed": round(committed, 6),
    }
    assert message_text(change, committed) == encode(expected)
