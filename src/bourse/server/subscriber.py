"""One WebSocket subscriber of the market feed: what it follows, what it is
owed, how far behind it may fall.

Market messages reach a subscriber through its fan-out group (``fanout.py``),
shared with every connection that follows the same symbols; what is its
alone (replies to its ops, snapshots, its account's order events) waits
here, each text marked with where it falls among the group's messages, so
that its frame keeps the order in which everything was published.

A subscriber never holds more than ``--subscriber-backlog`` unread bytes
(waiting here, or written and not yet taken by its client's kernel): past
it, market messages are dropped and the subscriber is *lagging* until the
client has taken everything sent; then the feed's resync (a fresh snapshot
per symbol) is queued. A lagging subscriber that takes nothing for
``--closing-stall`` seconds is closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bourse.server.fanout import Group

#: Ops (subscribe, unsubscribe) a connection may send per second, and at once.
OPS_PER_SECOND = 20.0
#: WebSocket close codes (RFC 6455).
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN_LATER = 1013


class Outlet(Protocol):
    """The WebSocket connection behind a subscriber."""

    def unsent_bytes(self) -> int:
        """Bytes written to the connection and not yet taken by the kernel."""

    def ready(self, size: int) -> bool:
        """A frame of ``size`` bytes may be written now without waiting for
        the client to read."""

    async def send(self, frame: bytes) -> None:
        """Send one text frame (UTF-8); at once when ``ready`` said so."""

    async def close(self, code: int, reason: str) -> None:
        """Close the connection, promptly even if the client does not read."""


class Subscriber:
    """One WebSocket connection: what it follows and what is its alone."""

    def __init__(
        self, outlet: Outlet, *, backlog: int, stall: float, wake: Callable[[Subscriber], None]
    ) -> None:
        self.outlet = outlet
        self.symbols: set[str] = set()
        self.accounts: set[str] = set()
        #: Dropping market messages until everything sent has been taken.
        self.lagging = False
        #: Order events dropped while lagging, not yet reported.
        self.missed_orders = 0
        self.closed = False
        #: The fan-out group of the symbols it follows (None: it follows none).
        self.group: Group | None = None
        #: Where in its group's pending messages its share begins (it joined
        #: the group after the ones before, or has them already).
        self.start = 0
        #: Its own texts, each with the number of group messages before it.
        self.own: list[tuple[int, str]] = []
        self.backlog = backlog
        self._own_bytes = 0
        self._stall = stall
        self._wake = wake
        self._watchdog: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None
        self._op_tokens = OPS_PER_SECOND
        self._op_time = time.monotonic()

    @property
    def unread(self) -> int:
        """Bytes waiting here or written and not yet taken by the client."""
        return self._own_bytes + self.outlet.unsent_bytes()

    def push(self, text: str) -> None:
        """Queue a reply whatever the backlog; past the backlog, start
        lagging all the same, so that a client that sends ops and reads
        nothing is closed after a stall."""
        self._enqueue(text)
        if not self.lagging and self.unread > self.backlog:
            self.start_lagging()

    def offer(self, text: str) -> bool:
        """Queue a feed message of its own unless that would pass the
        backlog, in which case start lagging; False when ``text`` was dropped."""
        if self.lagging:
            return False
        if self.unread + len(text) > self.backlog:
            self.start_lagging()
            return False
        self._enqueue(text)
        return True

    def offer_order(self, text: str) -> None:
        """Queue an order event, counting it if it is dropped."""
        if not self.offer(text):
            self.missed_orders += 1

    def allow_op(self) -> bool:
        """Take one op from the connection's token bucket."""
        now = time.monotonic()
        elapsed, self._op_time = now - self._op_time, now
        self._op_tokens = min(OPS_PER_SECOND, self._op_tokens + elapsed * OPS_PER_SECOND)
        if self._op_tokens < 1:
            return False
        self._op_tokens -= 1
        return True

    def take(self, shared: list[str]) -> list[str]:
        """Its texts and its share of ``shared`` (its group's pending
        messages) in the order they were published; nothing is left here."""
        texts: list[str] = []
        at = self.start
        for position, text in self.own:
            if position > at:
                texts.extend(shared[at:position])
                at = position
            texts.append(text)
        texts.extend(shared[at:])
        self.own = []
        self._own_bytes = 0
        self.start = 0
        return texts

    def hold(self, texts: list[str], position: int) -> None:
        """Keep ``texts`` (taken, not yet sent) as its own, before the group
        messages from ``position`` on."""
        self.own = [(position, text) for text in texts]
        self._own_bytes = sum(len(text) for text in texts)
        self.start = position

    def start_lagging(self) -> None:
        """Drop market messages until the client has read everything."""
        self.lagging = True
        self._wake(self)  # the fan-out watches for the client to catch up
        self._watch_for(self.unread)

    def catch_up(self, texts: list[str]) -> None:
        """The client has taken everything: follow again from ``texts``
        (a fresh snapshot of each symbol it follows)."""
        self._stop_watching()
        self.lagging = False
        for text in texts:
            self._enqueue(text)

    def stop(self) -> None:
        """Send nothing more: the connection is gone or going."""
        self.closed = True
        self._stop_watching()

    async def close(self, code: int, reason: str) -> None:
        """Close the connection; nothing more is sent."""
        if not self.closed:
            self.stop()
            await self.outlet.close(code, reason)

    def _enqueue(self, text: str) -> None:
        group = self.group
        self.own.append((len(group.pending) if group is not None else 0, text))
        self._own_bytes += len(text)
        self._wake(self)

    def _watch_for(self, unread: int) -> None:
        loop = asyncio.get_running_loop()
        self._stop_watching()
        self._watchdog = loop.call_later(self._stall, self._check_progress, unread)

    def _stop_watching(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _check_progress(self, unread_before: int) -> None:
        """Close a lagging subscriber that took nothing in the last stall."""
        unread = self.unread
        if unread < unread_before:
            self._watch_for(unread)
        else:
            self._watchdog = None
            self._closing = asyncio.get_running_loop().create_task(
                self.close(CLOSE_POLICY, "too slow")
            )
