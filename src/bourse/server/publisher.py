"""Publishing market data, and only what is committed.

The exchange in memory runs ahead of the database: it holds the effects of
batches whose commit has not returned, any of which may yet be lost. So
the engine keeps a second, committed view of the market (a
``MarketMirror``) that moves only when a batch's commit returns, by that
batch's ``MarketUpdate``; listeners (the gateways, or the one process's
own web feed) get the same updates at the same moment, and a listener
that starts later begins from that committed view, never from the
exchange itself. When the exchange is (re)loaded from the database,
memory and database agree, and every listener starts again from a
snapshot of it.

The leaderboard is cut the same way: under load, standings are taken
from the exchange at the moment a batch is cut (at most once per
``STANDINGS_INTERVAL``) and published when that batch has committed; when
the exchange is idle (everything applied is committed), they are taken
from it directly, so the last batches of a session are not left out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from bourse.core.exchange import Exchange
from bourse.core.market import MarketSnapshot, MarketUpdate, Standing
from bourse.core.mirror import MarketMirror

#: Seconds between two leaderboard cuts.
STANDINGS_INTERVAL = 1.0


class MarketListener(Protocol):
    """Whoever serves market data: a web feed, or the gateways' links."""

    def reset(self, snapshot: MarketSnapshot) -> None:
        """Start again from ``snapshot``."""

    def publish(self, update: MarketUpdate) -> None:
        """Apply one committed batch's update."""

    def set_standings(self, standings: tuple[Standing, ...]) -> None:
        """The leaderboard as of a committed batch."""


def has_news(update: MarketUpdate) -> bool:
    """True when ``update`` changes anything a listener sees."""
    return bool(update.symbols or update.messages or update.orders)


class MarketPublisher:
    """The committed market and the listeners that follow it."""

    def __init__(
        self,
        *,
        leaderboard: bool,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.mirror = MarketMirror()
        self._listeners: list[MarketListener] = []
        self._leaderboard = leaderboard
        self._clock = clock
        self._wall_clock = wall_clock
        self._standings_cut = -STANDINGS_INTERVAL
        #: A batch committed since the standings were last cut.
        self._stale = False
        #: The leaderboard as of the last committed cut (empty when off).
        self.standings: tuple[Standing, ...] = ()

    def follow(self, listener: MarketListener) -> None:
        """Send ``listener`` the committed market, then every update."""
        listener.reset(self.snapshot())
        if self._leaderboard:
            listener.set_standings(self.standings)
        self._listeners.append(listener)

    def snapshot(self) -> MarketSnapshot:
        """The committed market, whole."""
        return self.mirror.snapshot()

    def loaded(self, exchange: Exchange) -> None:
        """``exchange`` was just loaded from the database (nothing is in
        flight): every listener starts again from it."""
        snapshot = exchange.market_snapshot()
        self.mirror.reset(snapshot)
        for listener in self._listeners:
            listener.reset(snapshot)
        if self._leaderboard:
            self._standings_cut = self._clock()
            self._publish_standings(exchange.standings())

    def standings_due(self, exchange: Exchange) -> tuple[Standing, ...] | None:
        """The standings to publish with the batch being cut now, when the
        leaderboard is on and the last cut is old enough; else None."""
        if not self._leaderboard or self._clock() - self._standings_cut < STANDINGS_INTERVAL:
            return None
        self._standings_cut = self._clock()
        self._stale = False
        return exchange.standings()

    def committed(self, update: MarketUpdate, standings: tuple[Standing, ...] | None) -> None:
        """A batch has committed: publish what it changed."""
        self._stale = True
        if has_news(update):
            update = replace(update, committed=self._wall_clock())
            self.mirror.apply(update)
            for listener in self._listeners:
                listener.publish(update)
        if standings is not None:
            self._publish_standings(standings)

    async def keep_standings(self, committed: Callable[[], Exchange | None]) -> None:
        """Every ``STANDINGS_INTERVAL``, publish fresh standings if batches
        committed since the last cut and ``committed()`` gives the exchange
        (it does only while nothing applied is uncommitted)."""
        while True:
            await asyncio.sleep(STANDINGS_INTERVAL)
            exchange = committed()
            if self._stale and exchange is not None:
                self._stale = False
                self._standings_cut = self._clock()
                self._publish_standings(exchange.standings())

    def _publish_standings(self, standings: tuple[Standing, ...]) -> None:
        self.standings = standings
        for listener in self._listeners:
            listener.set_standings(standings)
