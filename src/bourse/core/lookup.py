"""Queries and cancels of orders the exchange no longer holds in memory.

The exchange keeps only what can still change: open orders, and closed ones
whose last change is not yet in the tables. A ``<query>`` or ``<cancel>``
naming any other order it has issued is answered from the stored rows of
that order instead, off the exchange's loop. The exchange hands back a
``StoredLookup`` in the command's place; once the order's stored row
(``StoredOrder``) has been read, ``answer`` gives the very result the
exchange would have given from memory: the order's history for a query of
one's own order, "nothing to cancel" for a cancel of it (a stored order is
closed for good), and "order does not exist" for an order of another
account or an id nobody holds, alike (no information leaks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bourse.core.commands import CancelOrder, QueryOrder
from bourse.core.errors import ErrorCode
from bourse.core.results import Error, OrderState, Result, Status


@dataclass(slots=True)
class StoredLookup(Error):  # noqa: N818 - a result that reads as an error, not an exception
    """A query or cancel to answer from the stored order. It is an ``Error``
    saying the order does not exist until ``answer`` replaces it, so that
    nothing can ever show more than that by rendering it unanswered."""

    account_id: str
    command: QueryOrder | CancelOrder


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """One stored order: its account and its (final) history."""

    account_id: str
    state: OrderState


def stored_lookup(account_id: str, command: QueryOrder | CancelOrder) -> StoredLookup:
    """The placeholder for ``command`` of ``account_id``, until answered."""
    return StoredLookup(ErrorCode.ORDER_NOT_FOUND, command.echo, account_id, command)


def answer(lookup: StoredLookup, stored: Mapping[int, StoredOrder]) -> Result:
    """What the exchange would have answered ``lookup`` from memory, given
    the stored orders read for it."""
    command = lookup.command
    order = stored.get(command.order_id)
    if order is None or order.account_id != lookup.account_id:
        return Error(ErrorCode.ORDER_NOT_FOUND, command.echo)
    if isinstance(command, CancelOrder):
        return Error(ErrorCode.NOTHING_TO_CANCEL, command.echo)
    return Status(order.state)


def unavailable(lookup: StoredLookup) -> Result:
    """The answer when the stored order could not be read."""
    return Error(ErrorCode.UNAVAILABLE, lookup.command.echo)
