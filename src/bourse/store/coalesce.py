"""Many journaled batches as one write to the documented tables.

The projection writes a window of consecutive batches at once: each row
that several batches changed is written once, with its last value (an
order opened and filled within the window is inserted once, already
filled; a busy account is updated once), while the history tables
(executions, deposits) keep every row, in order. Each row keeps the batch
that made it: a history row its own batch, an order the first batch of the
window that names it (the batch that created it, unless an earlier window
did, in which case the stored row keeps its own).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from bourse.core.changes import (
    AccountRow,
    ChangeSet,
    DepositRow,
    ExecutionRow,
    OrderRow,
    PositionRow,
    SequenceRow,
)


@dataclass(slots=True)
class Window:
    """Batches ``first`` to ``last`` merged: the rows to write, and the batch
    each order, execution and deposit row belongs to (same positions)."""

    first: int
    last: int
    changes: ChangeSet
    order_batches: list[int] = field(default_factory=list)
    execution_batches: list[int] = field(default_factory=list)
    deposit_batches: list[int] = field(default_factory=list)


def coalesce(batches: Iterable[tuple[int, ChangeSet]]) -> Window:
    """Merge consecutive batches, given in order, into one ``Window``."""
    symbols: dict[str, None] = {}
    accounts: dict[str, AccountRow] = {}
    positions: dict[tuple[str, str], PositionRow] = {}
    orders: dict[int, OrderRow] = {}
    order_batch: dict[int, int] = {}
    executions: list[ExecutionRow] = []
    deposits: list[DepositRow] = []
    sequences: dict[str, SequenceRow] = {}
    window = Window(0, 0, ChangeSet((), (), (), (), (), ()))
    for batch_id, changes in batches:
        if not window.first:
            window.first = batch_id
        elif batch_id != window.last + 1:
            raise ValueError(f"batch {batch_id} does not follow batch {window.last}")
        window.last = batch_id
        symbols.update(dict.fromkeys(changes.symbols))
        accounts.update((row.account_id, row) for row in changes.accounts)
        positions.update(((row.account_id, row.symbol), row) for row in changes.positions)
        for row in changes.orders:
            orders[row.order_id] = row
            order_batch.setdefault(row.order_id, batch_id)
        executions.extend(changes.executions)
        window.execution_batches.extend([batch_id] * len(changes.executions))
        deposits.extend(changes.deposits)
        window.deposit_batches.extend([batch_id] * len(changes.deposits))
        sequences.update((row.symbol, row) for row in changes.sequences)
    order_ids = sorted(orders)
    window.order_batches = [order_batch[order_id] for order_id in order_ids]
    window.changes = ChangeSet(
        symbols=list(symbols),
        accounts=list(accounts.values()),
        positions=list(positions.values()),
        orders=[orders[order_id] for order_id in order_ids],
        executions=executions,
        deposits=deposits,
        sequences=list(sequences.values()),
    )
    return window


def windows(batches: Iterable[tuple[int, ChangeSet]], max_rows: int) -> Iterator[Window]:
    """Consecutive batches grouped into windows of about ``max_rows`` rows
    each (a window closes once it reaches the bound; one batch larger than
    the bound makes a window alone)."""
    group: list[tuple[int, ChangeSet]] = []
    rows = 0
    for batch in batches:
        group.append(batch)
        rows += batch[1].row_count()
        if rows >= max_rows:
            yield coalesce(group)
            group, rows = [], 0
    if group:
        yield coalesce(group)
