"""What a batch of requests changed, ready to be written in one transaction.

The exchange notes the keys it touches while it applies requests (cheap set
insertions on the hot path). ``ChangeSet`` is cut from those notes in one
synchronous step: it copies the *current* value of every touched row, each
row once, so what a writer stores is the state at the moment of the cut and
never a value that moved while its commit was in flight. Rows are never
mutated once cut.

The same record carries the exchange back: what the database holds is the
change set that takes an empty exchange to the stored one, and
``restore_exchange`` takes it whole. The journal and the change set count
their rows the same way, so the bound on a batch's size (counted on the
journal) and a commit's deadline (counted on the change set) agree.

A change set cut by the exchange also carries what the batch changed in
the public market (``market``), published once the batch has committed,
and the new message number of each symbol it touched (``sequences``), so
that numbering continues from the database after a restart.
"""

from __future__ import annotations

from collections.abc import Sequence, Sized
from dataclasses import dataclass, field
from decimal import Decimal

from bourse.core.book import Order
from bourse.core.market import NO_MARKET_CHANGE, MarketUpdate
from bourse.core.results import Execution


@dataclass(slots=True)
class AccountRow:
    """``accounts(id, balance)``: free cash, not counting open buy holds."""

    account_id: str
    balance: Decimal


@dataclass(slots=True)
class PositionRow:
    """``positions(account_id, symbol, shares)``: the shares an account holds,
    not counting those its open sells hold."""

    account_id: str
    symbol: str
    shares: Decimal


@dataclass(slots=True)
class OrderRow:
    """``orders(...)``: an order's final state within the batch."""

    order_id: int
    account_id: str
    symbol: str
    amount: Decimal
    limit_price: Decimal
    open_shares: Decimal
    canceled_shares: Decimal
    canceled_at: int | None
    created_at: int


@dataclass(slots=True)
class ExecutionRow:
    """``executions(order_id, shares, price, executed_at)``: one per order
    per fill, in the order they happened."""

    order_id: int
    execution: Execution


@dataclass(slots=True)
class DepositRow:
    """``deposits(account_id, symbol, amount, deposited_at)``: cash an account
    was created with (``symbol`` None) or shares a ``<create>`` placed."""

    account_id: str
    symbol: str | None
    amount: Decimal
    time: int


@dataclass(slots=True)
class SequenceRow:
    """``symbols(symbol, market_seq)``: the ``seq`` of the last market-data
    message of ``symbol``."""

    symbol: str
    seq: int


#: A cancel: the id the next order would get at the time (which places it
#: among the orders opened in the batch), the order canceled, and when.
CancelNote = tuple[int, Order, int]


class _Tables:
    """One collection per table a batch writes, in dependency order (symbols
    and accounts before the positions and orders that refer to them)."""

    __slots__ = ()

    symbols: Sized
    accounts: Sized
    positions: Sized
    orders: Sized
    executions: Sized
    deposits: Sized
    sequences: Sized

    def row_count(self) -> int:
        """Rows these collections make, not counting a ``batches`` row."""
        return (
            len(self.symbols)
            + len(self.accounts)
            + len(self.positions)
            + len(self.orders)
            + len(self.executions)
            + len(self.deposits)
            + len(self.sequences)
        )

    def is_empty(self) -> bool:
        """True when there is no row at all."""
        return not self.row_count()


@dataclass(slots=True)
class ChangeSet(_Tables):
    """Rows of the six tables: what one batch writes (cut by the exchange), or
    everything stored (read back by the loader): the whole exchange is the
    change set that takes an empty one to it. ``sequences`` are more rows
    of ``symbols``: its ``market_seq`` column."""

    symbols: Sequence[str]
    accounts: Sequence[AccountRow]
    positions: Sequence[PositionRow]
    orders: Sequence[OrderRow]
    executions: Sequence[ExecutionRow]
    deposits: Sequence[DepositRow]
    sequences: Sequence[SequenceRow] = ()
    #: What the batch changed in the market (nothing, as read back by the loader).
    market: MarketUpdate = NO_MARKET_CHANGE


@dataclass(slots=True)
class Journal(_Tables):
    """Keys touched since the last cut, noted by the exchange as it works; the
    rows they name are copied at the cut, so each key counts as one row.
    ``sequences`` holds the symbols whose market changed; ``cancels``, not a
    table, the cancels in the order they happened (``CancelNote``)."""

    symbols: list[str] = field(default_factory=list)
    accounts: set[str] = field(default_factory=set)
    positions: set[tuple[str, str]] = field(default_factory=set)
    orders: set[int] = field(default_factory=set)
    executions: list[ExecutionRow] = field(default_factory=list)
    deposits: list[DepositRow] = field(default_factory=list)
    sequences: set[str] = field(default_factory=set)
    cancels: list[CancelNote] = field(default_factory=list)

    def clear(self) -> None:
        """Forget every key (once the changes they name have been cut)."""
        self.symbols.clear()
        self.accounts.clear()
        self.positions.clear()
        self.orders.clear()
        self.executions.clear()
        self.deposits.clear()
        self.sequences.clear()
        self.cancels.clear()
