"""The exchange service beside another bourse and a replicated database,
on an in-memory store (no PostgreSQL).

Only one bourse writes to a database: one that cannot take the writer's
lock stands by, saying who holds it, and starts once the lock is free
(at start, and after a failure when another bourse took over meanwhile).
With ``require_sync_standby`` nothing is acknowledged while no synchronous
standby streams: the service waits to start, and while serving refuses
requests from the first look at the replication that finds none.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from bourse.core.commands import TransactionsRequest
from bourse.core.errors import ErrorCode
from bourse.core.results import AccountCreated, Opened
from bourse.server import service as service_module
from bourse.server.service import ExchangeService
from tests.builders import account, create, order, shares, transactions
from tests.unit.fake_store import SYNCHRONOUS, UNREPLICATED, FakeStore, Write
from tests.unit.test_service import new_account, run, served, serving, submit, wait_until

HOLDER = "another bourse writes to this database (session 77 from 10.0.0.2)"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Attempts and looks 10 ms apart instead of 0.5 s: the same decisions, sooner."""
    monkeypatch.setattr(service_module, "RETRY_INTERVAL", 0.01)
    monkeypatch.setattr(service_module, "REPLICATION_POLL", 0.01)


def test_a_second_bourse_stands_by_until_the_first_releases_the_database(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        store = FakeStore()
        store.held_by = HOLDER
        service = ExchangeService(store)
        starting = asyncio.create_task(service.start())
        await asyncio.sleep(0.1)
        assert not starting.done()
        assert not service.ready
        assert "load" not in store.calls  # nothing is read while another writes
        assert submit(service, new_account("1")).settled == [ErrorCode.UNAVAILABLE]
        store.held_by = None
        await asyncio.wait_for(starting, 5)
        assert service.ready

    with caplog.at_level(logging.WARNING):
        run(scenario)
    standing_by = [r.getMessage() for r in caplog.records if "standing by" in r.getMessage()]
    assert standing_by == [f"standing by: {HOLDER}"]  # said once, not every attempt


def test_after_a_failure_a_bourse_that_lost_the_lock_serves_nothing_until_it_is_free() -> None:
    async def scenario() -> None:
        store = FakeStore()
        service = ExchangeService(store)
        async with serving(service):
            store.writes.append(Write.FAIL_BEFORE_SENDING)
            store.held_by = HOLDER  # another bourse took over meanwhile
            failed = submit(service, new_account("1"))
            await wait_until(lambda: failed.settled)
            await asyncio.sleep(0.1)
            assert not service.ready
            assert submit(service, new_account("2")).settled == [ErrorCode.UNAVAILABLE]
            store.held_by = None
            assert await served(service, new_account("3")) == [[AccountCreated("3")]]

    run(scenario)


def test_a_required_synchronous_standby_is_waited_for_at_start() -> None:
    async def scenario() -> None:
        store = FakeStore()
        store.replicated = UNREPLICATED
        service = ExchangeService(store, require_sync_standby=True)
        starting = asyncio.create_task(service.start())
        await asyncio.sleep(0.1)
        assert not starting.done()
        store.replicated = SYNCHRONOUS
        await asyncio.wait_for(starting, 5)
        assert service.ready

    run(scenario)


def test_while_a_required_standby_is_missing_requests_are_refused_then_served_again() -> None:
    async def scenario() -> None:
        store = FakeStore()
        store.replicated = SYNCHRONOUS
        service = ExchangeService(store, require_sync_standby=True)
        async with serving(service):
            watcher = asyncio.create_task(service.watch_replication())
            assert await served(service, new_account("1")) == [[AccountCreated("1")]]
            store.replicated = UNREPLICATED
            await wait_until(lambda: submit(service, new_account("probe")).settled)
            assert submit(service, new_account("3")).settled == [ErrorCode.UNAVAILABLE]
            await service.drain()
            assert "3" not in {row.account_id for row in store.stored().accounts}
            store.replicated = SYNCHRONOUS
            await wait_until(lambda: not submit(service, new_account("4")).settled)
            assert await served(service, new_account("5")) == [[AccountCreated("5")]]
            watcher.cancel()

    run(scenario)


def test_without_the_requirement_an_unreplicated_database_is_served_and_said_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        store = FakeStore()
        store.replicated = UNREPLICATED
        service = ExchangeService(store)
        async with serving(service):
            assert await served(service, new_account("1")) == [[AccountCreated("1")]]

    with caplog.at_level(logging.INFO):
        run(scenario)
    assert any("not replicated" in r.getMessage() for r in caplog.records)


def _sell() -> TransactionsRequest:
    return transactions("1", order("SPY", "-5", "10"))


def _opened_id(settled: list[object]) -> int:
    """The id of the order a one-order request opened."""
    (results,) = settled
    assert isinstance(results, list)
    (opened,) = results
    assert isinstance(opened, Opened)
    return opened.order_id


def test_acknowledged_batches_a_failover_lost_are_said_and_their_order_ids_not_reused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        store = FakeStore()
        service = ExchangeService(store)
        async with serving(service):
            await served(service, create(account("1", "1000"), shares("SPY", "1", "100")))
            standby = store.standby()  # the standby stops receiving here
            lost_id = _opened_id(await served(service, _sell()))
            store.fail_over_to(standby)
            store.writes.append(Write.FAIL_BEFORE_SENDING)  # the next write finds the loss
            refused = submit(service, new_account("2"))
            await wait_until(lambda: refused.settled)
            assert _opened_id(await served(service, _sell())) > lost_id

    with caplog.at_level(logging.ERROR):
        run(scenario)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("acknowledged batches 2 to 2 are not in the database" in e for e in errors), errors
