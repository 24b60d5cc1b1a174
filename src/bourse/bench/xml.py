"""Requests written as the protocol's XML, for load generation.

The workload generator produces engine commands; a load client needs the
bytes a real client would send. Commands keep the exact attribute text they
echo (``echo``), so the XML written here reads back to the same commands.
"""

from __future__ import annotations

from collections.abc import Iterator
from xml.sax.saxutils import quoteattr

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


def frame(xml: bytes) -> bytes:
    """The protocol's framing: the length in decimal, a newline, the XML."""
    return b"%d\n%s" % (len(xml), xml)


def _attributes(pairs: tuple[tuple[str, str], ...]) -> str:
    return "".join(f" {name}={quoteattr(value)}" for name, value in pairs)


def _transaction_child(command: TransactionCommand) -> str:
    if isinstance(command, PlaceOrder):
        return f"<order{_attributes(command.echo)}/>"
    if isinstance(command, QueryOrder):
        return f"<query{_attributes(command.echo)}/>"
    if isinstance(command, CancelOrder):
        return f"<cancel{_attributes(command.echo)}/>"
    raise ValueError(f"cannot write {command!r}")


def transactions_xml(request: TransactionsRequest) -> bytes:
    """``<transactions id>`` with one child per command."""
    children = "".join(_transaction_child(command) for command in request.commands)
    return f"<transactions id={quoteattr(request.account_id)}>{children}</transactions>".encode()


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
                    f"<account id={quoteattr(command.account_id)} balance={quoteattr(balance)}/>"
                )
            elif isinstance(command, AddShares):
                parts.append(
                    f"<symbol sym={quoteattr(command.symbol)}><account id="
                    f"{quoteattr(command.account_id)}>{format_decimal(command.shares)}"
                    "</account></symbol>"
                )
            elif isinstance(command, Rejected):
                raise ValueError(f"cannot write {command!r}")
        yield f"<create>{''.join(parts)}</create>".encode()
