"""A batch's change set as the bytes of one journal row, and back.

The journal row is on the critical path (no reply leaves before it has
committed), so its encoding must cost the engine little: every row becomes
a plain tuple and the whole is pickled, which the interpreter does in C.
Pickle can name any class, and the bytes come back from the database, so
decoding admits exactly one class, ``decimal.Decimal``: a row forged in
the table can fail to decode, never run code.
"""

from __future__ import annotations

import io
import pickle
from decimal import Decimal

from bourse.core.changes import (
    AccountRow,
    ChangeSet,
    DepositRow,
    ExecutionRow,
    OrderRow,
    PositionRow,
    SequenceRow,
)
from bourse.core.results import Execution

#: Bumped when the layout below changes; decoding refuses other versions.
_VERSION = 1


class JournalFormatError(Exception):
    """A journal row this version of bourse cannot read."""


def encode(changes: ChangeSet) -> bytes:
    """The change set as bytes (what the batch wrote, not its market update)."""
    return pickle.dumps(
        (
            _VERSION,
            tuple(changes.symbols),
            [(r.account_id, r.balance) for r in changes.accounts],
            [(r.account_id, r.symbol, r.shares) for r in changes.positions],
            [
                (
                    r.order_id,
                    r.account_id,
                    r.symbol,
                    r.amount,
                    r.limit_price,
                    r.open_shares,
                    r.canceled_shares,
                    r.canceled_at,
                    r.created_at,
                )
                for r in changes.orders
            ],
            [
                (r.order_id, r.execution.shares, r.execution.price, r.execution.time)
                for r in changes.executions
            ],
            [(r.account_id, r.symbol, r.amount, r.time) for r in changes.deposits],
            [(r.symbol, r.seq) for r in changes.sequences],
        ),
        protocol=pickle.HIGHEST_PROTOCOL,
    )


def decode(data: bytes) -> ChangeSet:
    """The change set ``encode`` made these bytes from."""
    try:
        fields = _DecimalsOnly(io.BytesIO(data)).load()
        version, symbols, accounts, positions, orders, executions, deposits, sequences = fields
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError) as exc:
        raise JournalFormatError(f"unreadable journal row: {exc}") from exc
    if version != _VERSION:
        raise JournalFormatError(f"journal row of format {version}, expected {_VERSION}")
    return ChangeSet(
        symbols=symbols,
        accounts=[AccountRow(*row) for row in accounts],
        positions=[PositionRow(*row) for row in positions],
        orders=[OrderRow(*row) for row in orders],
        executions=[
            ExecutionRow(order_id, Execution(shares, price, time))
            for order_id, shares, price, time in executions
        ],
        deposits=[DepositRow(*row) for row in deposits],
        sequences=[SequenceRow(*row) for row in sequences],
    )


class _DecimalsOnly(pickle.Unpickler):
    """An unpickler that can build no object but a ``Decimal``."""

    def find_class(self, module: str, name: str) -> type[Decimal]:
        if (module, name) == ("decimal", "Decimal"):
            return Decimal
        raise pickle.UnpicklingError(f"journal rows hold no {module}.{name}")
