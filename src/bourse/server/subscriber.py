"""One WebSocket subscriber of the market feed: its queue, its backlog, its frames.

A subscriber queues the texts the feed offers it and a pump sends them,
at most one frame per ``--feed-interval`` (everything queued meanwhile as
one JSON array, a lone message as itself). It never holds more than
``--subscriber-backlog`` unread bytes (queued here, or written and not yet
taken by its client's kernel): past it, offered messages are dropped and
the subscriber is *lagging* until the client has taken everything sent;
then the feed's resync (a fresh snapshot per symbol) is queued. A lagging
subscriber that takes nothing for ``--closing-stall`` seconds is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

#: Ops (subscribe, unsubscribe) a connection may send per second, and at once.
OPS_PER_SECOND = 20.0
#: How often a lagging subscriber's transport is checked for having drained.
DRAIN_POLL = 0.05
#: WebSocket close codes (RFC 6455).
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN_LATER = 1013


class Outlet(Protocol):
    """The WebSocket connection behind a subscriber."""

    def unsent_bytes(self) -> int:
        """Bytes written to the connection and not yet taken by the kernel."""

    async def send(self, text: str) -> None:
        """Send one text message (may wait while the connection is full)."""

    async def close(self, code: int, reason: str) -> None:
        """Close the connection, promptly even if the client does not read."""


class Subscriber:
    """One WebSocket connection: what it follows and what waits to be sent."""

    def __init__(
        self, outlet: Outlet, *, backlog: int, stall: float, interval: float = 0.0
    ) -> None:
        self.outlet = outlet
        self.symbols: set[str] = set()
        self.accounts: set[str] = set()
        #: Dropping market messages until everything sent has been taken.
        self.lagging = False
        #: Order events dropped while lagging, not yet reported.
        self.missed_orders = 0
        self.closed = False
        self._backlog = backlog
        self._stall = stall
        self._interval = interval
        #: Loop time before which no frame is sent (what comes meanwhile joins it).
        self._next_frame = 0.0
        self._queue: deque[str] = deque()
        self._queued = 0
        #: Messages in the queue (an item may hold several, comma-joined).
        self._queued_messages = 0
        #: The symbols it follows, as the key of its fan-out group.
        self.group: frozenset[str] = frozenset()
        self._wake = asyncio.Event()
        self._watchdog: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None
        self._op_tokens = OPS_PER_SECOND
        self._op_time = time.monotonic()

    @property
    def unread(self) -> int:
        """Bytes queued or written and not yet taken by the client."""
        return self._queued + self.outlet.unsent_bytes()

    def push(self, text: str) -> None:
        """Queue a reply whatever the backlog; past the backlog, start
        lagging all the same, so that a client that sends ops and reads
        nothing is closed after a stall."""
        self._enqueue(text)
        if not self.lagging and self.unread > self._backlog:
            self._start_lagging()

    def offer(self, text: str, messages: int = 1) -> bool:
        """Queue feed messages (``messages`` of them, comma-joined in
        ``text``) unless that would pass the backlog, in which case start
        lagging; False when ``text`` was dropped."""
        if self.lagging:
            return False
        if self.unread + len(text) > self._backlog:
            self._start_lagging()
            return False
        self._enqueue(text, messages)
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

    async def pump(self, resync: Callable[[Subscriber], list[str]]) -> None:
        """Send what is queued until closed; after lagging, once the client
        has taken everything, queue what ``resync`` gives (fresh snapshots)."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionError):
            while not self.closed:
                await self._wake.wait()
                wait = self._next_frame - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._wake.clear()
                if self._queue and not self.closed:
                    self._next_frame = loop.time() + self._interval
                    await self.outlet.send(self._take_frame())
                if self.lagging and not self._queue:
                    await self._recover(resync)

    def _take_frame(self) -> str:
        """Everything queued, as one frame: the one message itself, or a
        JSON array of the messages in order."""
        texts = list(self._queue)
        alone = self._queued_messages == 1
        self._queue.clear()
        self._queued = self._queued_messages = 0
        return texts[0] if alone else "[" + ",".join(texts) + "]"

    def stop(self) -> None:
        """Send nothing more: the connection is gone or going."""
        self.closed = True
        self._wake.set()
        self._stop_watching()

    async def close(self, code: int, reason: str) -> None:
        """Close the connection; nothing more is sent."""
        if not self.closed:
            self.stop()
            await self.outlet.close(code, reason)

    def _enqueue(self, text: str, messages: int = 1) -> None:
        self._queue.append(text)
        self._queued += len(text)
        self._queued_messages += messages
        self._wake.set()

    def _start_lagging(self) -> None:
        self.lagging = True
        self._wake.set()  # the pump watches for the client to catch up
        self._watch_for(self.unread)

    def _watch_for(self, unread: int) -> None:
        loop = asyncio.get_running_loop()
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

    async def _recover(self, resync: Callable[[Subscriber], list[str]]) -> None:
        while self.outlet.unsent_bytes() and not self.closed:
            await asyncio.sleep(DRAIN_POLL)
        if self.closed:
            return
        self._stop_watching()
        self.lagging = False
        for text in resync(self):
            self._enqueue(text)
