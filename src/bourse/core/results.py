"""What the engine answers: one result per command, in command order.

Results are snapshots taken when the command ran, so they can be rendered
later (after the batch holding their effects has committed) without seeing
state that moved since: nothing mutates them once made. (They are plain
slotted dataclasses rather than frozen ones because a frozen constructor
costs three times as much on the engine's hot path.)
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bourse.core.commands import Attrs
from bourse.core.errors import ErrorCode


@dataclass(slots=True)
class AccountCreated:
    """``<created id/>``."""

    account_id: str


@dataclass(slots=True)
class SharesCreated:
    """``<created sym id/>``."""

    symbol: str
    account_id: str


@dataclass(slots=True)
class Opened:
    """``<opened sym amount limit id/>``; ``echo`` holds sym, amount, limit
    exactly as sent."""

    echo: Attrs
    order_id: int


@dataclass(slots=True)
class Execution:
    """One fill of one order: ``shares`` (positive) at ``price``, at ``time``
    (whole seconds since the epoch)."""

    shares: Decimal
    price: Decimal
    time: int


@dataclass(slots=True)
class OrderState:
    """An order's history at one moment: what is open, what was canceled and
    when, and every fill oldest first. Share counts are positive."""

    order_id: int
    open_shares: Decimal
    canceled_shares: Decimal
    canceled_at: int | None
    executions: tuple[Execution, ...]


@dataclass(slots=True)
class Status:
    """``<status id>`` answering a query."""

    state: OrderState


@dataclass(slots=True)
class Canceled:
    """``<canceled id>`` answering a cancel."""

    state: OrderState


@dataclass(slots=True)
class Error:
    """``<error …>message</error>`` carrying the command's ``echo``."""

    code: ErrorCode
    echo: Attrs


Result = AccountCreated | SharesCreated | Opened | Status | Canceled | Error
