"""Requests written as the protocol's XML, for load generation.

The workload generator produces exchange commands; a load client needs the
bytes a real client would send. Commands keep the exact attribute text they
echo (``echo``), so the XML written here reads back to the same commands.
Escaping and the length line are the protocol's own (``protocol.xmltext``,
``protocol.framing``), the very rules the server writes its replies with.
"""

from __future__ import annotations

from collections.abc import Iterator

from bourse.core.commands import (
    AddShares,
    CancelOrder,
    CreateAccount,
    CreateRequest,
    PlaceOrder,
    QueryOrder,
    Rejected,
    TransactionCommand,
    TransactionsRequest,
)
from bourse.core.money import format_decimal
from bourse.protocol.framing import frame_request as frame
from bourse.protocol.xmltext import attributes

__all__ = ["create_xml", "frame", "transactions_xml"]


def _transaction_child(command: TransactionCommand) -> str:
    if isinstance(command, PlaceOrder):
        return f"<order{attributes(command.echo)}/>"
    if isinstance(command, QueryOrder):
        return f"<query{attributes(command.echo)}/>"
    if isinstance(command, CancelOrder):
        return f"<cancel{attributes(command.echo)}/>"
    raise ValueError(f"cannot write {command!r}")


def transactions_xml(request: TransactionsRequest) -> bytes:
    """``<transactions id>`` with one child per command."""
    children = "".join(_transaction_child(command) for command in request.commands)
    root = attributes((("id", request.account_id),))
    return f"<transactions{root}>{children}</transactions>".encode()


def create_xml(request: CreateRequest, children_per_request: int = 1000) -> Iterator[bytes]:
    """``<create>`` documents holding the request's commands, in order, at
    most ``children_per_request`` commands each."""
    commands = request.commands
    for start in range(0, len(commands), children_per_request):
        parts = []
        for command in commands[start : start + children_per_request]:
            if isinstance(command, CreateAccount):
                balance = format_decimal(command.balance)
                parts.append(
                    f"<account{attributes((('id', command.account_id), ('balance', balance)))}/>"
                )
            elif isinstance(command, AddShares):
                parts.append(
                    f"<symbol{attributes((('sym', command.symbol),))}>"
                    f"<account{attributes((('id', command.account_id),))}>"
                    f"{format_decimal(command.shares)}</account></symbol>"
                )
            elif isinstance(command, Rejected):
                raise ValueError(f"cannot write {command!r}")
        yield f"<create>{''.join(parts)}</create>".encode()
