"""The market-data feed of one process: its mirror, its subscribers, the fan-out.

Every process that serves the web view keeps a ``MarketMirror`` of the
committed market and passes each committed update on to its WebSocket
subscribers. A message is encoded to JSON once and the same text is queued
for every subscriber of its symbol, so fan-out costs a byte copy per
subscriber, not an encoding. A subscriber never holds more than
``--subscriber-backlog`` unread bytes: past it, its messages are dropped
until it has taken everything sent, and then it gets a fresh snapshot of
each symbol it follows (conflation); one that takes nothing for
``--closing-stall`` seconds meanwhile is closed. The messages
themselves are in ``feed_wire``.

Frames, not messages, are what a fan-out pays for (a frame costs the same
few microseconds whatever it holds), so a subscriber is sent at most one
frame per ``--feed-interval``: everything queued for it meanwhile leaves
together, as a JSON array in order (a lone message goes as itself). A
message after a quiet interval leaves at once; under load each one waits
at most the interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from bourse.core.market import MarketSnapshot, MarketUpdate, Standing
from bourse.core.mirror import MarketMirror
from bourse.server.access import AccessPolicy
from bourse.server.config import ServerConfig
from bourse.server.feed_wire import (
    Op,
    OpError,
    encode,
    error_text,
    message_text,
    op_json,
    order_text,
    parse_op,
    snapshot_text,
)

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

    def offer(self, text: str) -> bool:
        """Queue a feed message unless that would pass the backlog, in which
        case start lagging; False when ``text`` was dropped."""
        if self.lagging:
            return False
        if self.unread + len(text) > self._backlog:
            self._start_lagging()
            return False
        self.push(text)
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
        self._queue.clear()
        self._queued = 0
        return texts[0] if len(texts) == 1 else "[" + ",".join(texts) + "]"

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

    def _enqueue(self, text: str) -> None:
        self._queue.append(text)
        self._queued += len(text)
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


class MarketFeed:
    """One process's mirror and its subscribers."""

    def __init__(self, config: ServerConfig, access: AccessPolicy) -> None:
        self.mirror = MarketMirror()
        self.standings: tuple[Standing, ...] = ()
        self._config = config
        self._access = access
        self._subscribers: set[Subscriber] = set()
        self._by_symbol: dict[str, set[Subscriber]] = {}
        self._by_account: dict[str, set[Subscriber]] = {}
        #: Each symbol's last encoded snapshot, and the seq it is at.
        self._snapshots: dict[str, tuple[int, str]] = {}

    @property
    def subscribers(self) -> int:
        """WebSocket connections open now."""
        return len(self._subscribers)

    @property
    def largest_backlog(self) -> int:
        """The most unread bytes one subscriber holds now: at most about
        ``--subscriber-backlog``, however slow it is."""
        return max((subscriber.unread for subscriber in self._subscribers), default=0)

    def reset(self, snapshot: MarketSnapshot) -> None:
        """Start again from ``snapshot``; every subscriber gets a fresh
        snapshot of each symbol it follows."""
        self.mirror.reset(snapshot)
        self._snapshots.clear()
        for symbol, followers in list(self._by_symbol.items()):
            text = self.snapshot_text(symbol)
            for subscriber in list(followers):
                if text is None:
                    self._unfollow(subscriber, symbol)
                else:
                    subscriber.offer(text)

    def publish(self, update: MarketUpdate) -> None:
        """Apply one committed update and pass it on to the subscribers."""
        self.mirror.apply(update)
        for message in update.messages:
            followers = self._by_symbol.get(message.symbol)
            if followers:
                text = message_text(message, update.committed)
                for subscriber in followers:
                    subscriber.offer(text)
        for event in update.orders:
            owners = self._by_account.get(event.account_id)
            if owners:
                text = order_text(event, update.committed)
                for subscriber in owners:
                    subscriber.offer_order(text)

    def set_standings(self, standings: tuple[Standing, ...]) -> None:
        """The leaderboard, as of the last committed batch."""
        self.standings = standings

    def snapshot_text(self, symbol: str) -> str | None:
        """``symbol``'s snapshot message, encoded once per ``seq``."""
        seq = self.mirror.seq(symbol)
        cached = self._snapshots.get(symbol)
        if cached is not None and cached[0] == seq:
            return cached[1]
        state = self.mirror.state(symbol)
        if state is None:
            return None
        text = snapshot_text(state)
        self._snapshots[symbol] = (state.seq, text)
        return text

    def join(self, outlet: Outlet) -> Subscriber | None:
        """A subscriber for ``outlet``; None when ``--max-subscribers`` are open."""
        if len(self._subscribers) >= self._config.max_subscribers:
            return None
        config = self._config
        subscriber = Subscriber(
            outlet,
            backlog=config.subscriber_backlog,
            stall=config.closing_stall,
            interval=config.feed_interval,
        )
        self._subscribers.add(subscriber)
        return subscriber

    def leave(self, subscriber: Subscriber) -> None:
        """Forget a closed connection."""
        subscriber.stop()
        self._subscribers.discard(subscriber)
        for symbol in list(subscriber.symbols):
            self._unfollow(subscriber, symbol)
        for account in list(subscriber.accounts):
            self._unfollow_account(subscriber, account)

    async def pump(self, subscriber: Subscriber) -> None:
        """Send ``subscriber`` its messages until it is closed."""
        await subscriber.pump(self._resync)

    async def receive(self, subscriber: Subscriber, text: str) -> None:
        """Act on one client message: an op, or an error back; a flood closes."""
        if not subscriber.allow_op():
            await subscriber.close(CLOSE_POLICY, "too many messages")
            return
        try:
            op = parse_op(text)
            if op.kind == "subscribe":
                self._subscribe(subscriber, op)
            else:
                self._unsubscribe(subscriber, op)
        except OpError as error:
            subscriber.push(error_text(str(error)))

    async def close_all(self, code: int, reason: str) -> None:
        """Close every connection (at shutdown)."""
        closing = [subscriber.close(code, reason) for subscriber in self._subscribers]
        await asyncio.gather(*closing)

    def _subscribe(self, subscriber: Subscriber, op: Op) -> None:
        unknown = [symbol for symbol in op.symbols if self.mirror.seq(symbol) is None]
        if unknown:
            raise OpError(f"unknown symbol: {', '.join(unknown)}")
        if op.account is not None and "orders" in op.channels:
            if not self._access.may_transact(op.account, op.token):
                raise OpError("account or token refused")
            subscriber.accounts.add(op.account)
            self._by_account.setdefault(op.account, set()).add(subscriber)
        subscriber.push(encode({"type": "subscribed", **op_json(op)}))
        for symbol in op.symbols:
            subscriber.symbols.add(symbol)
            self._by_symbol.setdefault(symbol, set()).add(subscriber)
            text = self.snapshot_text(symbol)
            if text is not None:
                subscriber.offer(text)

    def _unsubscribe(self, subscriber: Subscriber, op: Op) -> None:
        for symbol in op.symbols:
            self._unfollow(subscriber, symbol)
        if op.account is not None and "orders" in op.channels:
            self._unfollow_account(subscriber, op.account)
        subscriber.push(encode({"type": "unsubscribed", **op_json(op)}))

    def _unfollow(self, subscriber: Subscriber, symbol: str) -> None:
        subscriber.symbols.discard(symbol)
        _forget(self._by_symbol, symbol, subscriber)

    def _unfollow_account(self, subscriber: Subscriber, account: str) -> None:
        subscriber.accounts.discard(account)
        _forget(self._by_account, account, subscriber)

    def _resync(self, subscriber: Subscriber) -> list[str]:
        """What a subscriber that lagged gets: a snapshot of each symbol it
        follows, and how many order events it missed."""
        texts = [self.snapshot_text(symbol) for symbol in sorted(subscriber.symbols)]
        if subscriber.missed_orders:
            texts.append(encode({"type": "missed", "orders": subscriber.missed_orders}))
            subscriber.missed_orders = 0
        return [text for text in texts if text is not None]


def _forget(index: dict[str, set[Subscriber]], key: str, subscriber: Subscriber) -> None:
    """Take ``subscriber`` out of ``index[key]``, and the key once nobody is left."""
    followers = index.get(key)
    if followers is not None:
        followers.discard(subscriber)
        if not followers:
            del index[key]
