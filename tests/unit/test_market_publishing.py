"""Only committed state is published, on an in-memory store.

A trade reaches market-data listeners only once the write of its batch has
returned; a batch whose write fails is never published, and listeners
start again from the reloaded exchange; a listener that joins while a
batch is in flight starts from the committed market, without it. The
leaderboard is cut with a batch and published when that batch commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

from bourse.core.market import MarketSnapshot, MarketUpdate, Standing, Trade
from bourse.server.publisher import MarketPublisher
from bourse.server.service import ExchangeService
from tests.builders import account, create, order, shares, transactions
from tests.unit.fake_store import FakeStore, Write
from tests.unit.test_service import run, serving, submit, wait_until


class Listener:
    """A ``MarketListener`` that keeps what it was sent."""

    def __init__(self) -> None:
        self.snapshots: list[MarketSnapshot] = []
        self.updates: list[MarketUpdate] = []
        self.standings: list[tuple[Standing, ...]] = []

    def reset(self, snapshot: MarketSnapshot) -> None:
        self.snapshots.append(snapshot)

    def publish(self, update: MarketUpdate) -> None:
        self.updates.append(update)

    def set_standings(self, standings: tuple[Standing, ...]) -> None:
        self.standings.append(standings)

    def trades(self) -> list[Trade]:
        return [m for u in self.updates for m in u.messages if isinstance(m, Trade)]


SETUP = create(account("1", "1000"), account("2", "1000"), shares("SPY", "2", "10"))
BID = transactions("1", order("SPY", "5", "10"))
OFFER = transactions("2", order("SPY", "-5", "10"))


async def committed(service: ExchangeService, store: FakeStore, request: object) -> None:
    outcome = submit(service, request)  # type: ignore[arg-type]
    await wait_until(lambda: outcome.settled)


@asynccontextmanager
async def resting_bid_followed() -> AsyncIterator[tuple[ExchangeService, FakeStore, Listener]]:
    """A serving exchange with a listener, two accounts and a committed bid."""
    store = FakeStore()
    service = ExchangeService(store)
    listener = Listener()
    async with serving(service):
        service.publisher.follow(listener)
        await committed(service, store, SETUP)
        await committed(service, store, BID)
        yield service, store, listener


def test_a_trade_is_published_only_after_its_batch_commits() -> None:
    async def scenario() -> None:
        async with resting_bid_followed() as (service, store, listener):
            store.hold = asyncio.Event()
            outcome = submit(service, OFFER)
            await wait_until(lambda: any(c.startswith("write") for c in store.calls[-1:]))
            await asyncio.sleep(0.05)
            assert listener.trades() == []  # applied in memory, not yet durable
            store.hold.set()
            await wait_until(lambda: outcome.settled)
        assert [(t.price, t.shares) for t in listener.trades()] == [(Decimal(10), Decimal(5))]

    run(scenario)


def test_a_failed_batch_is_never_published_and_listeners_start_again() -> None:
    async def scenario() -> None:
        async with resting_bid_followed() as (service, store, listener):
            store.writes.append(Write.FAIL_BEFORE_SENDING)
            await committed(service, store, OFFER)
            await wait_until(lambda: service.ready and len(listener.snapshots) == 2)
        assert listener.trades() == []
        (resting,) = listener.snapshots[-1].symbols
        assert [(level.price, level.shares) for level in resting.bids] == [
            (Decimal(10), Decimal(5))
        ]
        assert resting.asks == ()

    run(scenario)


def test_a_listener_joining_mid_commit_starts_from_the_committed_market() -> None:
    async def scenario() -> None:
        store = FakeStore()
        service = ExchangeService(store)
        async with serving(service):
            await committed(service, store, SETUP)
            store.hold = asyncio.Event()
            outcome = submit(service, BID)
            await wait_until(lambda: store.calls[-1].startswith("write"))
            late = Listener()
            service.publisher.follow(late)
            store.hold.set()
            await wait_until(lambda: outcome.settled)
        (before,) = late.snapshots[0].symbols
        assert before.bids == ()
        assert before.seq == 0
        (update,) = late.updates
        assert update.messages[0].seq == 1

    run(scenario)


def test_standings_are_cut_with_a_batch_and_published_when_it_commits() -> None:
    async def scenario() -> None:
        store = FakeStore()
        service = ExchangeService(store, publisher=MarketPublisher(leaderboard=True))
        listener = Listener()
        async with serving(service):
            service.publisher.follow(listener)
            keeper = asyncio.create_task(
                service.publisher.keep_standings(service.committed_exchange)
            )
            await committed(service, store, SETUP)
            await wait_until(lambda: listener.standings and listener.standings[-1])
            keeper.cancel()
        ranked = [(s.account_id, s.cash) for s in listener.standings[-1]]
        assert ranked == [("1", Decimal(1000)), ("2", Decimal(1000))]

    run(scenario)
