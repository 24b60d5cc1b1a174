"""Replies of one connection, released strictly in request order.

Every request gets a ``Reply`` slot the moment it is framed. A slot is
settled later — when the batch holding its effects has committed, at once
for a request that changed nothing, or by dropping the connection when the
outcome of its batch is unknown — and the outbox sends settled slots from the front only,
so a connection's answers never overtake each other.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Sequence

from bourse.core.errors import ErrorCode
from bourse.core.results import Result
from bourse.protocol.events import RequestError
from bourse.protocol.render import render_error, render_results


class _Ending(enum.Enum):
    """What happens to the connection once a reply is settled."""

    NONE = "keep the connection open"
    CLOSE = "close after sending"
    DROP = "drop at once, sending nothing"


class Reply:
    """One request's answer, pending until settled."""

    __slots__ = ("_outbox", "data", "ending", "results")

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self.data: bytes | None = None
        self.results: Sequence[Result] | None = None
        self.ending = _Ending.NONE

    @property
    def is_settled(self) -> bool:
        """True once the reply may leave (or the connection must close)."""
        return self.data is not None or self.results is not None or self.ending is _Ending.DROP

    def rendered(self) -> bytes:
        """The bytes to send: results are rendered only now, when they are
        about to leave, so replies waiting behind an earlier one hold their
        compact results rather than their XML."""
        if self.data is None:
            assert self.results is not None
            self.data = render_results(self.results)
            self.results = None
        return self.data

    def send(self, data: bytes) -> None:
        """Settle with ``data`` to send."""
        self.data = data
        self._outbox.flush()

    def send_last(self, data: bytes) -> None:
        """Settle with ``data``, then close the connection once it is sent."""
        self.ending = _Ending.CLOSE
        self.send(data)

    def drop_connection(self) -> None:
        """Settle by dropping the connection at once, without an answer."""
        self.ending = _Ending.DROP
        self._outbox.flush()

    # the exchange's outcomes (see ``service.Pending``)

    def release(self, results: Sequence[Result]) -> None:
        """Settle with the results of a committed request."""
        self.results = results
        self._outbox.flush()

    def refuse(self, code: ErrorCode) -> None:
        """Settle with an error: the request had no effect."""
        self.send(render_error(RequestError(code)))

    def drop(self) -> None:
        """Settle without an answer: the request's outcome is unknown."""
        self.drop_connection()


class Outbox:
    """The pending replies of one connection, oldest first."""

    __slots__ = ("_abort", "_close", "_pending", "_write")

    def __init__(
        self,
        write: Callable[[bytes], None],
        close: Callable[[], None],
        abort: Callable[[], None],
    ) -> None:
        self._write = write
        self._close = close
        self._abort = abort
        self._pending: deque[Reply] = deque()

    def reserve(self) -> Reply:
        """A slot for the next request's reply."""
        reply = Reply(self)
        self._pending.append(reply)
        return reply

    @property
    def is_empty(self) -> bool:
        """True when no reply is waiting."""
        return not self._pending

    def __len__(self) -> int:
        """Replies waiting: requests received and not yet answered."""
        return len(self._pending)

    def flush(self) -> None:
        """Send every settled reply at the front, in order."""
        pending = self._pending
        while pending and pending[0].is_settled:
            reply = pending.popleft()
            if reply.ending is _Ending.DROP:
                pending.clear()
                self._abort()
                return
            data = reply.rendered()
            if data:
                self._write(data)
            if reply.ending is _Ending.CLOSE:
                pending.clear()
                self._close()
                return
