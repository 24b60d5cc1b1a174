"""What the exchange answers: one result per command, in command order.

Results are snapshots taken when the command ran, so they can be rendered
later (after the batch holding their effects has committed) without seeing
state that moved since: nothing mutates them once made. (They are plain
slotted dataclasses rather than frozen ones because a frozen constructor
costs three times as much on the exchange's hot path.)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from typing import overload

from bourse.core.commands import Attrs
from bourse.core.errors import ErrorCode


@dataclass(slots=True)
class AccountCreated:
    """``<created id/>``."""

    account_id: str


@dataclass(slots=True)
class SharesCreated:
    """``<created sym id/>``: the shares were placed in the account, ``symbol``
    created first if it was new."""

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


class FillHistory(Sequence[Execution]):
    """The first ``count`` fills of an order, oldest first.

    An order's fill list only ever grows, so its first ``count`` entries
    never change: holding the list and a count is a snapshot that costs the
    same for an order with a million fills as for one with none, where a
    copy would cost a pointer per fill for every query waiting on its batch.
    """

    __slots__ = ("_count", "_fills")

    def __init__(self, fills: list[Execution], count: int | None = None) -> None:
        self._fills = fills
        self._count = len(fills) if count is None else count

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Execution: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Execution]: ...

    def __getitem__(self, index: int | slice) -> Execution | Sequence[Execution]:
        return self._fills[: self._count][index]

    def __iter__(self) -> Iterator[Execution]:
        return islice(self._fills, self._count)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FillHistory({list(self)!r})"


@dataclass(slots=True)
class OrderState:
    """An order's history at one moment: what is open, what was canceled and
    when, and every fill oldest first. Share counts are positive."""

    order_id: int
    open_shares: Decimal
    canceled_shares: Decimal
    canceled_at: int | None
    executions: Sequence[Execution]


@dataclass(slots=True)
class OrderReport:
    """An answer reporting one order's history (``OrderState``)."""

    state: OrderState


@dataclass(slots=True)
class Status(OrderReport):
    """``<status id>`` answering a query."""


@dataclass(slots=True)
class Canceled(OrderReport):
    """``<canceled id>`` answering a cancel."""


@dataclass(slots=True)
class Error:
    """``<error …>message</error>`` carrying the command's ``echo``."""

    code: ErrorCode
    echo: Attrs


Result = AccountCreated | SharesCreated | Opened | Status | Canceled | Error
