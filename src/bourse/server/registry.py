"""The open connections of one listener, the longest idle first.

At the connection cap a newcomer evicts the connection idle longest. The
connections are kept in the order of their last activity (an insertion-
ordered dict; a connection that finishes receiving a request moves to the
end), so finding that one costs the same with ten connections or ten
thousand: a flood of connections at the cap cannot turn every accept into
a scan of all of them. A connection that still owes a reply is passed
over for one of the next few that owes nothing.

Sockets still in their TLS handshake count from the moment they are
accepted, in an order of their own, and at the cap the oldest of them goes
before any established connection: it has proved nothing yet, so sockets
that never finish a handshake cannot push established clients out (one
at most, when the cap is full of them) and are themselves bounded by the
cap. The price, at the cap only: clients that handshake at the same
moment may evict each other, and retry.
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
    """Open connections, ordered from the longest idle to the most recent,
    and sockets in their TLS handshake, oldest first."""

    __slots__ = ("_capacity", "_handshaking", "_order")

    def __init__(self, capacity: int | None = None) -> None:
        """``capacity``: connections kept before a newcomer evicts one
        (None: no cap)."""
        self._order: OrderedDict[Connection, None] = OrderedDict()
        self._handshaking: OrderedDict[Connection, None] = OrderedDict()
        self._capacity = capacity

    def admit(self, connection: Connection, *, handshaking: bool) -> Connection | None:
        """A connection just accepted (``handshaking``: its TLS handshake
        is still to come). At the cap it first makes room: the connection
        evicted, already forgotten here, for the caller to drop; else None."""
        victim = None
        if self._capacity is not None and len(self) >= self._capacity:
            victim = self.eviction_candidate()
            if victim is not None:
                self.discard(victim)
        if handshaking:
            self._handshaking[connection] = None
        else:
            self.add(connection)
        return victim

    def add(self, connection: Connection) -> None:
        """A new established connection: the most recently active."""
        self._order[connection] = None

    def handshake_done(self, connection: Connection) -> None:
        """``connection`` finished its TLS handshake: it becomes an
        established connection, the most recently active."""
        if connection in self._handshaking:
            del self._handshaking[connection]
            self.add(connection)

    def discard(self, connection: Connection) -> None:
        """Forget ``connection`` if it is here."""
        self._order.pop(connection, None)
        self._handshaking.pop(connection, None)

    def touch(self, connection: Connection) -> None:
        """``connection`` was just active: it becomes the last to evict."""
        if connection in self._order:
            self._order.move_to_end(connection)

    def __len__(self) -> int:
        return len(self._order) + len(self._handshaking)

    def __iter__(self) -> Iterator[Connection]:
        """A snapshot, handshakes first, then the longest idle first (safe
        to close connections while iterating)."""
        return iter([*self._handshaking, *self._order])

    def eviction_candidate(self) -> Connection | None:
        """The oldest socket in its TLS handshake, if any; else the
        longest-idle connection that owes nothing, among the first
        ``EVICTION_SEARCH``, or the longest-idle one; None when empty."""
        if self._handshaking:
            return next(iter(self._handshaking))
        longest_idle = None
        for connection in itertools.islice(self._order, EVICTION_SEARCH):
            if not connection.is_busy:
                return connection
            if longest_idle is None:
                longest_idle = connection
        return longest_idle
