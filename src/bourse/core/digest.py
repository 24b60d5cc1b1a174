"""A fingerprint of the exchange's live state, for comparing two exchanges.

The next order id, what was deposited, accounts, positions, the books
(every resting order in priority order), every open order's history and
each symbol's market data (its last ``seq`` and recent trades, without
their own numbers, which are not stored) are written out canonically and
hashed. Closed orders are left out: they never change again, an exchange
keeps them only until they are in the tables (``lookup.py``), and a
rebuilt one does not load them. Two exchanges with equal digests answer
every future request the same way (queries of closed orders alike, from
the tables) and publish the same market data; a restart test compares the
live exchange's digest with that of the exchange rebuilt from the database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from bourse.core.exchange import Exchange
from bourse.core.market import SymbolState
from bourse.core.money import format_decimal


def state_digest(exchange: Exchange) -> str:
    """SHA-256 of the canonical text of ``exchange``'s state."""
    sha = hashlib.sha256()
    for line in canonical_lines(exchange):
        sha.update(line.encode())
        sha.update(b"\n")
    return sha.hexdigest()


def canonical_lines(exchange: Exchange) -> Iterator[str]:
    """The state as sorted, canonical lines (useful to diff two states)."""
    yield f"next order {exchange.next_order_id}"
    yield f"cash deposited {format_decimal(exchange.cash_deposited)}"
    for symbol in sorted(exchange.shares_created):
        yield f"symbol {symbol} created {format_decimal(exchange.shares_created[symbol])}"
        yield from _market_lines(exchange.market.state(symbol))
    accounts = exchange.ledger.accounts
    for account_id in sorted(accounts):
        account = accounts[account_id]
        yield f"account {account_id} balance {format_decimal(account.balance)}"
        for symbol in sorted(account.positions):
            yield f"  position {symbol} {format_decimal(account.positions[symbol])}"
    for symbol in sorted(exchange.books):
        book = exchange.books[symbol]
        for side, name in ((book.bids, "bids"), (book.asks, "asks")):
            yield f"book {symbol} {name} " + " ".join(str(o.order_id) for o in side.orders())
    for order_id in sorted(exchange.orders):
        order = exchange.orders[order_id]
        if not order.open_shares:
            continue
        yield (
            f"order {order_id} {order.account_id} {order.symbol} "
            f"{format_decimal(order.amount)} @ {format_decimal(order.limit)} "
            f"open {format_decimal(order.open_shares)} "
            f"canceled {format_decimal(order.canceled_shares)} at {order.canceled_at} "
            f"created {order.created_at}"
        )
        for execution in order.executions:
            yield (
                f"  executed {format_decimal(execution.shares)} "
                f"@ {format_decimal(execution.price)} at {execution.time}"
            )


def _market_lines(state: SymbolState | None) -> Iterator[str]:
    """A symbol's published market: its ``seq``, levels and recent trades
    (whose own ``seq`` is left out: it is not stored)."""
    if state is None:
        yield "  market unpublished"
        return
    yield f"  market seq {state.seq}"
    for side, levels in (("bids", state.bids), ("asks", state.asks)):
        yield f"  {side} " + " ".join(
            f"{format_decimal(level.shares)}@{format_decimal(level.price)}" for level in levels
        )
    for trade in state.trades:
        yield (
            f"  trade {format_decimal(trade.shares)} "
            f"@ {format_decimal(trade.price)} at {trade.time}"
        )
