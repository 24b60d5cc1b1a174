"""The public market data of a batch, derived when the batch is cut, and
the accounts' standings.

Matching is the exchange's hot path, so it notes almost nothing for the
feed: only the symbols whose market changed (``Journal.sequences``, which
also counts their rows) and each cancel (``Journal.cancels``). The rest
follows from what the batch journals anyway, because the ids of accepted
orders count up: the orders opened in the batch are the ids handed out
since the last cut; every fill is journaled as two consecutive execution
rows, one per order, and of those two orders the incoming one has the
larger id (the resting one was opened earlier), so the fills of each new
order follow its opening, before the next order's. A level changes only
when an order rests there (what is left of a new order after its own
fills), fills there (at the resting order's price) or is canceled there;
adding those changes to the levels last published (kept by a
``MarketMirror``) gives each touched level's new total without walking
its orders, however deep it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from bourse.core.book import Book, Order
from bourse.core.changes import CancelNote, ExecutionRow, Journal, SequenceRow
from bourse.core.ledger import Account
from bourse.core.market import (
    BookChange,
    LevelChange,
    MarketMessage,
    MarketUpdate,
    OrderEvent,
    Side,
    Standing,
    Trade,
)
from bourse.core.mirror import MarketMirror
from bourse.core.money import MONEY, ZERO
from bourse.core.results import Execution

#: The net change of each touched level, by symbol, side (True: bids) and price.
_LevelDeltas = dict[tuple[str, bool, Decimal], Decimal]


def cut_market(
    journal: Journal, orders: Mapping[int, Order], opened: range, market: MarketMirror
) -> tuple[MarketUpdate, tuple[SequenceRow, ...]]:
    """What the batch ``journal`` noted (with the orders of ids ``opened``)
    changed in the market, numbered on from ``market``, which it is then
    applied to; and the new ``seq`` of each symbol it touched."""
    trades: dict[str, list[Execution]] = {}
    deltas: _LevelDeltas = {}
    filled = _note_fills(journal.executions, orders, trades, deltas)
    _note_rests(orders, opened, filled, deltas)
    for _, order, _ in journal.cancels:
        key = (order.symbol, order.is_buy, order.limit)
        deltas[key] = MONEY.subtract(deltas.get(key, ZERO), order.canceled_shares)
    changes = _level_changes(deltas, market)
    messages: list[MarketMessage] = []
    rows: list[SequenceRow] = []
    for symbol in sorted(journal.sequences):
        seq = market.seq(symbol) or 0
        for execution in trades.get(symbol, ()):
            seq += 1
            messages.append(Trade(symbol, seq, execution.price, execution.shares, execution.time))
        seq += 1
        messages.append(BookChange(symbol, seq, changes.get(symbol, ())))
        rows.append(SequenceRow(symbol, seq))
    events = _order_events(journal, orders, opened)
    update = MarketUpdate(tuple(journal.symbols), tuple(messages), events)
    market.apply(update)
    return update, tuple(rows)


def _note_fills(
    executions: Sequence[ExecutionRow],
    orders: Mapping[int, Order],
    trades: dict[str, list[Execution]],
    deltas: _LevelDeltas,
) -> dict[int, Decimal]:
    """Each fill as a trade of its symbol and as shares gone from the
    resting order's level; the shares each incoming order filled."""
    filled: dict[int, Decimal] = {}
    add, subtract = MONEY.add, MONEY.subtract
    rows = iter(executions)
    for first, second in zip(rows, rows, strict=True):
        execution = first.execution
        resting_id, incoming_id = first.order_id, second.order_id
        if resting_id > incoming_id:  # the resting order is the older one
            resting_id, incoming_id = incoming_id, resting_id
        resting = orders[resting_id]
        shares = execution.shares
        trades.setdefault(resting.symbol, []).append(execution)
        key = (resting.symbol, resting.is_buy, execution.price)
        deltas[key] = subtract(deltas.get(key, ZERO), shares)
        filled[incoming_id] = add(filled.get(incoming_id, ZERO), shares)
    return filled


def _note_rests(
    orders: Mapping[int, Order], opened: range, filled: Mapping[int, Decimal], deltas: _LevelDeltas
) -> None:
    """What each new order left resting at its limit after its own fills."""
    add, subtract = MONEY.add, MONEY.subtract
    for order_id in opened:
        order = orders[order_id]
        rested = order.amount.copy_abs()
        if order_id in filled:
            rested = subtract(rested, filled[order_id])
        if rested:
            key = (order.symbol, order.is_buy, order.limit)
            deltas[key] = add(deltas.get(key, ZERO), rested)


def _level_changes(
    deltas: _LevelDeltas, market: MarketMirror
) -> dict[str, tuple[LevelChange, ...]]:
    """Each touched level at its new total (what ``market`` holds plus the
    change), per symbol: bids then asks, best first."""
    sides: dict[str, tuple[list[LevelChange], list[LevelChange]]] = {}
    for (symbol, is_buy, price), delta in deltas.items():
        side: Side = "buy" if is_buy else "sell"
        total = MONEY.add(market.shares_at(symbol, side, price), delta)
        bids, asks = sides.setdefault(symbol, ([], []))
        (bids if is_buy else asks).append(LevelChange(side, price, total))
    return {
        symbol: (
            *sorted(bids, key=_price, reverse=True),
            *sorted(asks, key=_price),
        )
        for symbol, (bids, asks) in sides.items()
    }


def _price(change: LevelChange) -> Decimal:
    return change.price


def _order_events(
    journal: Journal, orders: Mapping[int, Order], opened: range
) -> tuple[OrderEvent, ...]:
    """Every order event of the batch, in the order they happened: each new
    order's opening followed by its own fills, the cancels in between."""
    executions = journal.executions
    fills = _fill_events(executions, orders)
    fills_end = _fills_end(executions)
    cancels = journal.cancels
    events: list[OrderEvent] = []
    row = canceled = 0
    for order_id in opened:
        while canceled < len(cancels) and cancels[canceled][0] <= order_id:
            events.append(_canceled(cancels[canceled]))
            canceled += 1
        order = orders[order_id]
        size = order.amount.copy_abs()
        limit = order.limit
        events.append(
            OrderEvent(
                order.account_id,
                order_id,
                order.symbol,
                "opened",
                order.amount,
                limit,
                size,
                limit,
                size,
                order.created_at,
            )
        )
        if order_id in fills_end:
            events += fills[row : fills_end[order_id]]
            row = fills_end[order_id]
    events.extend(_canceled(note) for note in cancels[canceled:])
    return tuple(events)


def _fills_end(executions: Sequence[ExecutionRow]) -> dict[int, int]:
    """For each incoming order that filled, the row just after its fills
    (consecutive pairs, in which it has the larger id)."""
    return {
        max(executions[row].order_id, executions[row + 1].order_id): row + 2
        for row in range(0, len(executions), 2)
    }


def _canceled(note: CancelNote) -> OrderEvent:
    _, order, now = note
    limit = order.limit
    return OrderEvent(
        order.account_id,
        order.order_id,
        order.symbol,
        "canceled",
        order.amount,
        limit,
        order.canceled_shares,
        limit,
        ZERO,
        now,
    )


def _fill_events(
    executions: Sequence[ExecutionRow], orders: Mapping[int, Order]
) -> list[OrderEvent]:
    """One event per execution row, in row order, each with the shares its
    order still had open just after that fill.

    Worked backwards from the cut: after an order's last fill of the batch
    it had what is open now plus what a later cancel took (an order
    canceled in an earlier batch cannot fill in this one).
    """
    events: list[OrderEvent] = []
    open_later: dict[int, Decimal] = {}
    add = MONEY.add
    for row in reversed(executions):
        order_id = row.order_id
        order = orders[order_id]
        open_shares = open_later.get(order_id)
        if open_shares is None:
            open_shares = add(order.open_shares, order.canceled_shares)
        execution = row.execution
        events.append(
            OrderEvent(
                order.account_id,
                order_id,
                order.symbol,
                "fill",
                order.amount,
                order.limit,
                execution.shares,
                execution.price,
                open_shares,
                execution.time,
            )
        )
        open_later[order_id] = add(open_shares, execution.shares)
    events.reverse()
    return events


def standings(
    accounts: Mapping[str, Account], books: Mapping[str, Book], market: MarketMirror
) -> tuple[Standing, ...]:
    """Every account's cash and value (see ``Standing``) at the last prices
    ``market`` holds, ranked by value, highest first, then by account id."""
    held_cash: dict[str, Decimal] = {}
    held_shares: dict[str, dict[str, Decimal]] = {}
    for book in books.values():
        for order in book.bids.orders():
            cost = MONEY.multiply(order.open_shares, order.limit)
            held_cash[order.account_id] = MONEY.add(held_cash.get(order.account_id, ZERO), cost)
        for order in book.asks.orders():
            held = held_shares.setdefault(order.account_id, {})
            held[order.symbol] = MONEY.add(held.get(order.symbol, ZERO), order.open_shares)
    prices = {symbol: market.last_price(symbol) or ZERO for symbol in books}
    ranked = []
    for account_id, account in accounts.items():
        cash = MONEY.add(account.balance, held_cash.get(account_id, ZERO))
        value = cash
        for symbol, shares in _holdings(account, held_shares.get(account_id, {})).items():
            value = MONEY.add(value, MONEY.multiply(shares, prices[symbol]))
        ranked.append(Standing(account_id, cash, value))
    ranked.sort(key=lambda standing: (standing.value.copy_negate(), standing.account_id))
    return tuple(ranked)


def _holdings(account: Account, held: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Shares per symbol: free ones plus those held by open sells."""
    holdings = dict(account.positions)
    for symbol, shares in held.items():
        holdings[symbol] = MONEY.add(holdings.get(symbol, ZERO), shares)
    return holdings
