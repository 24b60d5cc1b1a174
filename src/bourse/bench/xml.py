"""Requests written as the protocol's XML, for load generation.

The workload generator produces exchange commands; a load client needs the
bytes a real client would send. Commands keep the exact attribute text they
echo (``echo``), so the XML written here reads back to the same commands.
Escaping and the length line are the protocol's own (``protocol.xmltext``,
``protocol.framing``), the very rules the server writes its replies with.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bourse.core.commands import AddShares, CancelOrder, CreateAccount, PlaceOrder, QueryOrder
from bourse.core.money import format_decimal
from bourse.protocol.framing import frame_request as frame
from bourse.protocol.xmltext import attributes

if TYPE_CHECKING:
    from bourse.core.commands import (
        CreateCommand,
        CreateRequest,
        TransactionCommand,
        TransactionsRequest,
    )

__all__ = ["create_xml", "frame", "transactions_xml"]


#: The element each kind of ``<transactions>`` child is written as.
_TRANSACTION_TAGS: dict[type[TransactionCommand], str] = {
    PlaceOrder: "order",
    QueryOrder: "query",
    CancelOrder: "cancel",
}


def _transaction_child(command: TransactionCommand) -> str:
    tag = _TRANSACTION_TAGS.get(type(command))
    if tag is None:
        raise ValueError(f"cannot write {command!r}")
    return f"<{tag}{attributes(command.echo)}/>"


def transactions_xml(request: TransactionsRequest) -> bytes:
    """``<transactions id>`` with one child per command."""
    children = "".join(_transaction_child(command) for command in request.commands)
    root = attributes((("id", request.account_id),))
    return f"<transactions{root}>{children}</transactions>".encode()


def _create_child(command: CreateCommand) -> str:
    if isinstance(command, CreateAccount):
        balance = format_decimal(command.balance)
        return f"<account{attributes((('id', command.account_id), ('balance', balance)))}/>"
    if isinstance(command, AddShares):
        return (
            f"<symbol{attributes((('sym', command.symbol),))}>"
            f"<account{attributes((('id', command.account_id),))}>"
            f"{format_decimal(command.shares)}</account></symbol>"
        )
    raise ValueError(f"cannot write {command!r}")


def create_xml(request: CreateRequest, children_per_request: int = 1000) -> Iterator[bytes]:
    """``<create>`` documents holding the request's commands, in order, at
    most ``children_per_request`` commands each."""
    commands = request.commands
    for start in range(0, len(commands), children_per_request):
        children = "".join(map(_create_child, commands[start : start + children_per_request]))
        yield f"<create>{children}</create>".encode()
