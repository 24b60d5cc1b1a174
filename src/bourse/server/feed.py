"""The market-data feed of one process: its mirror, its subscribers, the fan-out.

Every process that serves the web view keeps a ``MarketMirror`` of the
committed market and passes each committed update on to its WebSocket
subscribers. A message is encoded to JSON once per update and handed to
the fan-out (``fanout.py``), which sends each group of subscribers that
follow the same symbols one shared frame per tick. This module keeps who
follows what and answers the ops; how a subscriber bounds its backlog and
lags is ``subscriber.py``; the messages themselves are in ``feed_wire``.
"""

from __future__ import annotations

import asyncio

from bourse.core.market import MarketSnapshot, MarketUpdate, Standing
from bourse.core.mirror import MarketMirror
from bourse.server.access import AccessPolicy
from bourse.server.config import ServerConfig
from bourse.server.fanout import FanOut
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
from bourse.server.subscriber import CLOSE_POLICY, Outlet, Subscriber


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
        self._fanout = FanOut(config.feed_interval, self._resync)
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
                    self._regroup(subscriber)
                else:
                    subscriber.offer(text)

    def publish(self, update: MarketUpdate) -> None:
        """Apply one committed update and pass it on to the subscribers."""
        self.mirror.apply(update)
        followed = self._by_symbol
        texts = [
            (message.symbol, message_text(message, update.committed))
            for message in update.messages
            if message.symbol in followed
        ]
        if texts:
            self._fanout.publish(texts)
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
            wake=self._fanout.wake,
        )
        self._subscribers.add(subscriber)
        return subscriber

    def leave(self, subscriber: Subscriber) -> None:
        """Forget a closed connection."""
        self._fanout.leave(subscriber)
        self._subscribers.discard(subscriber)
        for symbol in list(subscriber.symbols):
            self._unfollow(subscriber, symbol)
        for account in list(subscriber.accounts):
            self._unfollow_account(subscriber, account)

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
        self._fanout.stop()
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
        self._regroup(subscriber)

    def _unsubscribe(self, subscriber: Subscriber, op: Op) -> None:
        for symbol in op.symbols:
            self._unfollow(subscriber, symbol)
        self._regroup(subscriber)
        if op.account is not None and "orders" in op.channels:
            self._unfollow_account(subscriber, op.account)
        subscriber.push(encode({"type": "unsubscribed", **op_json(op)}))

    def _regroup(self, subscriber: Subscriber) -> None:
        """Move ``subscriber`` to the group of the symbols it follows now."""
        self._fanout.regroup(subscriber)

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
