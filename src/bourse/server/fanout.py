"""The feed's fan-out: every subscriber's frame leaves on one common tick.

Subscribers that follow the same symbols form a group. A committed update's
messages are appended once to each group's pending list, not once per
subscriber; at most every ``--feed-interval`` one task turns each group's
pending messages into one frame (the message itself, or a JSON array of
them in order), encoded once, and writes those same bytes to every member.
A subscriber with texts of its own (replies, snapshots, order events) gets
a frame of its own that interleaves them with its group's messages in
publication order. So the per-subscriber cost of a frame is one write;
encoding, joining and waking are paid per group.

A member whose client has not taken what it was sent keeps its frame's
texts (counted against its backlog) until its connection has room; a
lagging member is checked each ``DRAIN_POLL`` until its client has read
everything, then gets the feed's resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from bourse.server.subscriber import Subscriber

log = logging.getLogger(__name__)

#: Seconds between checks of a subscriber that is waiting for its client to read.
DRAIN_POLL = 0.05
#: Frames written before the loop is let to serve other connections.
SENDS_PER_TURN = 32


class Group:
    """Subscribers that follow the same symbols, and the messages they are owed."""

    __slots__ = ("members", "pending", "symbols")

    def __init__(self, symbols: frozenset[str]) -> None:
        self.symbols = symbols
        self.members: set[Subscriber] = set()
        #: Message texts published since the last tick, in order.
        self.pending: list[str] = []


def frame_of(texts: list[str]) -> bytes:
    """One frame: a lone message itself, several as a JSON array in order."""
    text = texts[0] if len(texts) == 1 else "[" + ",".join(texts) + "]"
    return text.encode()


class FanOut:
    """The groups of one process's subscribers and the tick that sends their frames."""

    def __init__(self, interval: float, resync: Callable[[Subscriber], list[str]]) -> None:
        self._interval = interval
        self._resync = resync
        self._groups: dict[frozenset[str], Group] = {}
        #: Subscribers with texts of their own, or waiting for their client.
        self._owed: set[Subscriber] = set()
        self._due = asyncio.Event()
        self._next_tick = 0.0
        self._ticker: asyncio.Task[None] | None = None

    def wake(self, subscriber: Subscriber) -> None:
        """``subscriber`` has something of its own to send, or to wait for."""
        self._owed.add(subscriber)
        self._tick_soon()

    def publish(self, texts: list[tuple[str, str]]) -> None:
        """Owe each group the messages (symbol, text) of its symbols, in order."""
        posted = False
        for group in self._groups.values():
            symbols = group.symbols
            chosen = [text for symbol, text in texts if symbol in symbols]
            if chosen:
                group.pending.extend(chosen)
                posted = True
        if posted:
            self._tick_soon()

    def regroup(self, subscriber: Subscriber) -> None:
        """Move ``subscriber`` to the group of the symbols it follows now; what
        it was owed by its old group becomes its own."""
        texts = self._detach(subscriber)
        key = frozenset(subscriber.symbols)
        group = None
        if key:
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = Group(key)
            group.members.add(subscriber)
        subscriber.group = group
        subscriber.hold(texts, len(group.pending) if group is not None else 0)
        if texts:
            self.wake(subscriber)

    def leave(self, subscriber: Subscriber) -> None:
        """Forget ``subscriber`` (its connection is closed)."""
        subscriber.stop()
        self._detach(subscriber)
        subscriber.group = None
        self._owed.discard(subscriber)

    def _detach(self, subscriber: Subscriber) -> list[str]:
        """Take ``subscriber`` out of its group; what it is owed, in order."""
        old = subscriber.group
        if old is None:
            return subscriber.take([])
        texts = subscriber.take([] if subscriber.lagging else old.pending)
        old.members.discard(subscriber)
        if not old.members:
            del self._groups[old.symbols]
        return texts

    def stop(self) -> None:
        """Send no more frames."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    def _tick_soon(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._run())
            self._ticker.add_done_callback(_report_failure)
        self._due.set()

    async def _run(self) -> None:
        """Send the frames owed, at most once per interval; while anyone waits
        for its client, look again every ``DRAIN_POLL``."""
        loop = asyncio.get_running_loop()
        while True:
            if self._owed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._due.wait(), DRAIN_POLL)
            else:
                await self._due.wait()
            wait = self._next_tick - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._due.clear()
            self._next_tick = loop.time() + self._interval
            await self._send(self._collect())

    def _collect(self) -> list[tuple[Subscriber, bytes]]:
        """Every frame owed now, and who it goes to; the groups' pending
        messages are handed out and cleared. No waiting in here, so nothing
        is published in the middle."""
        frames: list[tuple[Subscriber, bytes]] = []
        owed, self._owed = self._owed, set()
        for group in self._groups.values():
            if group.pending:
                self._collect_group(group, owed, frames)
        for subscriber in owed:
            if subscriber.group is None or not subscriber.group.pending:
                self._collect_own(subscriber, [], frames)
        for group in self._groups.values():
            group.pending = []
        return frames

    def _collect_group(
        self, group: Group, owed: set[Subscriber], frames: list[tuple[Subscriber, bytes]]
    ) -> None:
        shared: bytes | None = None
        for subscriber in group.members:
            if subscriber in owed or subscriber.start or subscriber.lagging:
                self._collect_own(subscriber, group.pending, frames)
                continue
            if shared is None:
                shared = frame_of(group.pending)
            if subscriber.unread + len(shared) > subscriber.backlog:
                subscriber.start_lagging()
            else:
                self._hand_over(subscriber, shared, group.pending, frames)

    def _collect_own(
        self, subscriber: Subscriber, pending: list[str], frames: list[tuple[Subscriber, bytes]]
    ) -> None:
        """A frame for one subscriber alone: its texts and its share of its
        group's ``pending`` (dropped while it lags, or when it would pass
        its backlog)."""
        if subscriber.closed:
            subscriber.take([])
            return
        share = pending[subscriber.start :]
        if share and not subscriber.lagging:
            size = sum(len(text) for text in share)
            if subscriber.unread + size > subscriber.backlog:
                subscriber.start_lagging()
        texts = subscriber.take([] if subscriber.lagging else pending)
        if not texts:
            if subscriber.lagging and not subscriber.outlet.unsent_bytes():
                subscriber.catch_up(self._resync(subscriber))
            elif subscriber.lagging:
                self._owed.add(subscriber)
            return
        self._hand_over(subscriber, frame_of(texts), texts, frames)
        if subscriber.lagging:
            self._owed.add(subscriber)

    def _hand_over(
        self,
        subscriber: Subscriber,
        frame: bytes,
        texts: list[str],
        frames: list[tuple[Subscriber, bytes]],
    ) -> None:
        """Send ``frame`` this tick if the connection has room for it; else
        keep its ``texts`` for a later tick."""
        if subscriber.outlet.ready(len(frame)):
            frames.append((subscriber, frame))
        else:
            subscriber.hold(texts, 0)
            self._owed.add(subscriber)

    async def _send(self, frames: list[tuple[Subscriber, bytes]]) -> None:
        """Write the frames, letting the loop serve its other connections
        (the XML port first of all) every ``SENDS_PER_TURN`` of them."""
        for count, (subscriber, frame) in enumerate(frames, 1):
            if count % SENDS_PER_TURN == 0:
                await asyncio.sleep(0)
            if not subscriber.closed:
                try:
                    await subscriber.outlet.send(frame)
                except ConnectionError:
                    subscriber.stop()


def _report_failure(ticker: asyncio.Task[None]) -> None:
    """Say why the tick stopped, if it was not told to."""
    if not ticker.cancelled() and ticker.exception() is not None:
        log.error("the market-data fan-out stopped", exc_info=ticker.exception())
