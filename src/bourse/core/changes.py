"""What a batch of requests changed, ready to be written in one transaction.

The engine notes the keys it touches while it applies requests (cheap set
insertions on the hot path). ``ChangeSet`` is cut from those notes in one
synchronous step: it copies the *current* value of every touched row, each
row once, so what a writer stores is the state at the moment of the cut and
never a value that moved while its commit was in flight. Rows are never
mutated once cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from bourse.core.results import Execution


@dataclass(slots=True)
class AccountRow:
    """``accounts(id, balance)``: free cash, not counting open buy holds."""

    account_id: str
    balance: Decimal


@dataclass(slots=True)
class PositionRow:
    """``positions(account_id, symbol, shares)``: shares not held by sells."""

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
class ChangeSet:
    """Rows to write for one batch. New symbols come first in dependency
    order: accounts and symbols before positions and orders."""

    symbols: tuple[str, ...]
    accounts: tuple[AccountRow, ...]
    positions: tuple[PositionRow, ...]
    orders: tuple[OrderRow, ...]
    executions: tuple[ExecutionRow, ...]
    deposits: tuple[DepositRow, ...]

    def is_empty(self) -> bool:
        """True when the batch changed nothing."""
        return not (
            self.symbols
            or self.accounts
            or self.positions
            or self.orders
            or self.executions
            or self.deposits
        )

    def row_count(self) -> int:
        """Rows the batch writes, not counting its ``batches`` row."""
        return (
            len(self.symbols)
            + len(self.accounts)
            + len(self.positions)
            + len(self.orders)
            + len(self.executions)
            + len(self.deposits)
        )


@dataclass(slots=True)
class Journal:
    """Keys touched since the last cut, noted by the engine as it works."""

    symbols: list[str] = field(default_factory=list)
    accounts: set[str] = field(default_factory=set)
    positions: set[tuple[str, str]] = field(default_factory=set)
    orders: set[int] = field(default_factory=set)
    executions: list[ExecutionRow] = field(default_factory=list)
    deposits: list[DepositRow] = field(default_factory=list)

    def row_count(self) -> int:
        """Rows the changes noted so far will write (as ``ChangeSet.row_count``)."""
        return (
            len(self.symbols)
            + len(self.accounts)
            + len(self.positions)
            + len(self.orders)
            + len(self.executions)
            + len(self.deposits)
        )
