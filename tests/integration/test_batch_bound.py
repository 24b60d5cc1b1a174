"""A burst of large requests is committed in bounded batches, not looped.

Without a bound, every request applied while one batch commits joins the
next batch, so a burst of large requests makes one huge commit; if it runs
past the commit timeout it counts as in doubt, the exchange drops its
clients and reloads, and the same burst can do it again. Here the store is
the real one (both clusters) made slower in proportion to the rows each
commit writes, as a loaded database is, so the test decides on sleeps, not
on how fast this machine runs: a batch of the whole burst would take longer
than the commit timeout, a bounded batch well under it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from bourse.core.changes import ChangeSet
from bourse.core.commands import Request
from bourse.core.errors import ErrorCode
from bourse.core.results import Opened, Result
from bourse.server.service import ExchangeService
from bourse.store.fence import SessionId
from bourse.store.store import Store
from tests.builders import account, create, order, shares, transactions

pytestmark = pytest.mark.timeout(300)

COMMIT_TIMEOUT = 2.0
SECONDS_PER_ROW = 200e-6
BATCH_ROWS = 2_000
ORDERS_PER_REQUEST = 1_500
REQUESTS_IN_BURST = 10


class SlowStore(Store):
    """The real store, each commit delayed in proportion to its rows."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.batch_rows: list[int] = []

    async def write(
        self,
        batch_id: int,
        requests: int,
        changes: ChangeSet,
        statement_sent: Callable[[SessionId], None],
    ) -> None:
        self.batch_rows.append(changes.row_count())
        await asyncio.sleep(changes.row_count() * SECONDS_PER_ROW)
        await super().write(batch_id, requests, changes, statement_sent)


class Outcome:
    """A ``Pending`` that records how its request was settled."""

    def __init__(self) -> None:
        self.results: Sequence[Result] | None = None
        self.refused: ErrorCode | None = None
        self.dropped = False
        self.settled = asyncio.Event()

    def release(self, results: Sequence[Result]) -> None:
        self.results = results
        self.settled.set()

    def refuse(self, code: ErrorCode) -> None:
        self.refused = code
        self.settled.set()

    def drop(self) -> None:
        self.dropped = True
        self.settled.set()


def resting_buys(account_id: str, count: int) -> Request:
    """``count`` buys that do not cross anything (one order row each)."""
    return transactions(account_id, *[order("X", "1", "1") for _ in range(count)])


async def serve_burst(url: str, burst: list[Request]) -> tuple[SlowStore, list[Outcome]]:
    """Submit ``burst`` in one go (as requests read in one turn of the loop
    are) to a fresh exchange on ``url``; wait until every one is settled."""
    store = SlowStore(url)
    service = ExchangeService(store, commit_timeout=COMMIT_TIMEOUT, max_batch_rows=BATCH_ROWS)
    await service.start()
    committer = asyncio.create_task(service.run())
    try:
        setup = Outcome()
        accounts = [account(str(n), "1000000") for n in range(len(burst))]
        service.submit(create(*accounts, shares("X", "0", "1")), setup)
        await setup.settled.wait()
        outcomes = [Outcome() for _ in burst]
        for request, outcome in zip(burst, outcomes, strict=True):
            service.submit(request, outcome)
        async with asyncio.timeout(120):
            await asyncio.gather(*(outcome.settled.wait() for outcome in outcomes))
        return store, outcomes
    finally:
        committer.cancel()
        await store.close()


def assert_all_opened(outcomes: list[Outcome], orders_each: int) -> None:
    for outcome in outcomes:
        assert outcome.refused is None
        assert not outcome.dropped
        assert outcome.results is not None
        assert len(outcome.results) == orders_each
        assert all(isinstance(result, Opened) for result in outcome.results)


async def stored_order_count(url: str) -> int:
    store = Store(url)
    try:
        return len((await store.load()).orders)
    finally:
        await store.close()


def test_a_burst_of_large_requests_commits_in_bounded_batches(database_url: str) -> None:
    burst = [resting_buys(str(n), ORDERS_PER_REQUEST) for n in range(REQUESTS_IN_BURST)]
    store, outcomes = asyncio.run(serve_burst(database_url, burst))
    assert_all_opened(outcomes, ORDERS_PER_REQUEST)
    whole_burst = REQUESTS_IN_BURST * (ORDERS_PER_REQUEST + 1)
    assert whole_burst * SECONDS_PER_ROW > COMMIT_TIMEOUT  # one batch would time out
    assert max(store.batch_rows) < BATCH_ROWS + ORDERS_PER_REQUEST + 1
    total = asyncio.run(stored_order_count(database_url))
    assert total == REQUESTS_IN_BURST * ORDERS_PER_REQUEST


def test_one_request_larger_than_a_batch_gets_proportionally_longer(database_url: str) -> None:
    orders = 12_000
    assert (orders + 1) * SECONDS_PER_ROW > COMMIT_TIMEOUT  # the plain timeout would fire
    store, outcomes = asyncio.run(serve_burst(database_url, [resting_buys("0", orders)]))
    assert_all_opened(outcomes, orders)
    assert max(store.batch_rows) == orders + 2  # its orders, its account, its symbol's seq
    assert asyncio.run(stored_order_count(database_url)) == orders
