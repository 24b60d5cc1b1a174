"""What the exchange is asked to do: requests made of commands.

The protocol layer turns XML into these values; the exchange applies them.
Numbers and ids are already parsed, so the exchange never sees XML or text
it must interpret. Each command keeps ``echo``, the attributes its
``<error>`` must carry exactly as the client wrote them. A child that
failed validation before reaching the exchange travels as ``Rejected`` so
that its error still appears at its place among the results. Commands are
never mutated once made (they are not frozen only because a frozen
constructor costs three times as much on the per-request path).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bourse.core.errors import ErrorCode

#: Attributes of a result element, in order, as (name, value) pairs.
Attrs = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class CreateAccount:
    """``<account id balance/>`` inside ``<create>``."""

    account_id: str
    balance: Decimal

    @property
    def echo(self) -> Attrs:
        return (("id", self.account_id),)


@dataclass(slots=True)
class AddShares:
    """One ``<account id>NUM</account>`` inside ``<symbol sym>``: create the
    symbol if new, then add ``shares`` to the account's position."""

    symbol: str
    account_id: str
    shares: Decimal

    @property
    def echo(self) -> Attrs:
        return (("sym", self.symbol), ("id", self.account_id))


@dataclass(slots=True)
class PlaceOrder:
    """``<order sym amount limit/>``: positive amount buys, negative sells."""

    symbol: str
    amount: Decimal
    limit: Decimal
    echo: Attrs


@dataclass(slots=True)
class OrderReference:
    """A command naming one of the account's own orders by id (another
    account's order is answered as if it did not exist)."""

    order_id: int
    echo: Attrs


@dataclass(slots=True)
class QueryOrder(OrderReference):
    """``<query id/>``."""


@dataclass(slots=True)
class CancelOrder(OrderReference):
    """``<cancel id/>``: cancel the shares of the order still open (an order
    with none left open is refused)."""


@dataclass(slots=True)
class Rejected:
    """A child refused during validation; answered with ``code`` in place."""

    code: ErrorCode
    echo: Attrs


CreateCommand = CreateAccount | AddShares | Rejected
TransactionCommand = PlaceOrder | QueryOrder | CancelOrder | Rejected


@dataclass(slots=True)
class CreateRequest:
    """A ``<create>`` document: children applied strictly in order."""

    commands: tuple[CreateCommand, ...]


@dataclass(slots=True)
class TransactionsRequest:
    """A ``<transactions id>`` document: commands on behalf of one account."""

    account_id: str
    commands: tuple[TransactionCommand, ...]
    #: The account's credential, when the server asks for one (docs/security.md).
    token: str | None = None


Request = CreateRequest | TransactionsRequest
