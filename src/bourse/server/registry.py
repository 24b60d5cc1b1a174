"""The open connections of one listener, the longest idle first.

At the connection cap a newcomer evicts the connection idle longest. The
connections are kept in the order of their last activity (an insertion-
ordered dict; a connection that finishes receiving a request moves to the
end), so finding that one costs the same with ten connections or ten
thousand: a flood of connections at the cap cannot turn every accept into
a scan of all of them. A connection that still owes a reply is passed
over for one of the next few that owes nothing.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

#: How many of the longest-idle connections eviction looks through for
#: one that owes nothing before it takes the longest-idle one anyway.
EVICTION_SEARCH = 64


class Evictable(Protocol):
    """What eviction needs to know of a connection."""

    @property
    def is_busy(self) -> bool:
        """True while a request is arriving or a reply is owed."""
        ...


Connection = TypeVar("Connection", bound=Evictable)


class ConnectionRegistry(Generic[Connection]):
    """Open connections, ordered from the longest idle to the most recent."""

    __slots__ = ("_order",)

    def __init__(self) -> None:
        self._order: OrderedDict[Connection, None] = OrderedDict()

    def add(self, connection: Connection) -> None:
        """A new connection: the most recently active."""
        self._order[connection] = None

    def discard(self, connection: Connection) -> None:
        """Forget ``connection`` if it is here."""
        self._order.pop(connection, None)

    def touch(self, connection: Connection) -> None:
        """``connection`` was just active: it becomes the last to evict."""
        if connection in self._order:
            self._order.move_to_end(connection)

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[Connection]:
        """A snapshot, longest idle first (safe to close connections while
        iterating)."""
        return iter(list(self._order))

    def eviction_candidate(self) -> Connection | None:
        """The longest-idle connection that owes nothing, among the first
        ``EVICTION_SEARCH``; else the longest-idle one; None when empty."""
        longest_idle = None
        for connection in itertools.islice(self._order, EVICTION_SEARCH):
            if not connection.is_busy:
                return connection
            if longest_idle is None:
                longest_idle = connection
        return longest_idle
