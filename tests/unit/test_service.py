"""The exchange service's decisions, on an in-memory store (no PostgreSQL).

A reply leaves only after the write of its batch has returned. A write
that fails before its statement was sent refuses its batch and the ones
behind; one whose outcome is unknown drops its batch's clients, refuses the
ones behind, and settles the session in doubt before the exchange is
reloaded. While the database is down every request is refused at once;
recovery tries again until a load succeeds, each step with a deadline.
Batches close at ``max_batch_rows`` rows and commit in order, each within
a deadline that grows with the rows a single request wrote alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bourse.core.commands import Request
from bourse.core.errors import ErrorCode
from bourse.core.results import AccountCreated, Error, Result
from bourse.server import service as service_module
from bourse.server.app import build_service
from bourse.server.config import ServerConfig
from bourse.server.service import ExchangeService
from tests.builders import account, create
from tests.unit.fake_store import SESSION_PID, FakeStore, Write

#: Rows one new account writes: its ``accounts`` row and its ``deposits`` row.
ACCOUNT_ROWS = 2


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recovery attempts 10 ms apart instead of 0.5 s: the same decisions, sooner."""
    monkeypatch.setattr(service_module, "RETRY_INTERVAL", 0.01)


class Outcome:
    """A ``Pending`` that records how it was settled: the results it was
    released with, the error it was refused with, or None if dropped."""

    def __init__(self, released: list[Outcome] | None = None) -> None:
        self.settled: list[object] = []
        self._released = released

    def release(self, results: Sequence[Result]) -> None:
        self.settled.append(list(results))
        if self._released is not None:
            self._released.append(self)

    def refuse(self, code: ErrorCode) -> None:
        self.settled.append(code)

    def drop(self) -> None:
        self.settled.append(None)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


async def wait_until(condition: Callable[[], object], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


@asynccontextmanager
async def serving(service: ExchangeService) -> AsyncIterator[None]:
    """The service loaded, with its committer running for the duration."""
    await service.start()
    committer = asyncio.create_task(service.run())
    try:
        yield
    finally:
        committer.cancel()


def submit(service: ExchangeService, request: Request) -> Outcome:
    outcome = Outcome()
    service.submit(request, outcome)
    return outcome


def new_account(account_id: str) -> Request:
    return create(account(account_id, "100"))


async def served(service: ExchangeService, request: Request) -> list[object]:
    """How ``request`` is settled once the exchange serves again."""
    await wait_until(lambda: service.ready)
    outcome = submit(service, request)
    await wait_until(lambda: outcome.settled)
    return outcome.settled


def test_a_batch_is_released_only_after_its_write_returns() -> None:
    async def scenario() -> None:
        store = FakeStore()
        store.hold = asyncio.Event()
        service = ExchangeService(store)
        async with serving(service):
            outcome = submit(service, new_account("1"))
            await wait_until(lambda: "write 1" in store.calls)
            await asyncio.sleep(0.05)
            assert outcome.settled == []
            store.hold.set()
            await wait_until(lambda: outcome.settled)
        assert outcome.settled == [[AccountCreated("1")]]
        assert store.batches == [(1, 1, ACCOUNT_ROWS)]

    run(scenario)


def test_a_write_that_fails_before_sending_refuses_its_batch_and_those_behind() -> None:
    async def scenario() -> None:
        store = FakeStore()
        store.hold = asyncio.Event()
        store.writes.append(Write.FAIL_BEFORE_SENDING)
        service = ExchangeService(store)
        async with serving(service):
            failed = submit(service, new_account("1"))
            await wait_until(lambda: "write 1" in store.calls)
            behind = submit(service, new_account("2"))
            store.hold.set()
            await wait_until(lambda: failed.settled and behind.settled)
            assert failed.settled == [ErrorCode.UNAVAILABLE]
            assert behind.settled == [ErrorCode.UNAVAILABLE]
            # rebuilt from the database, which never saw account 1
            assert await served(service, new_account("1")) == [[AccountCreated("1")]]
        assert store.calls_after("write 1")[:3] == ["reset", "revive", "load"]
        assert not any(call.startswith("end_session") for call in store.calls)
        assert store.batches == [(1, 1, ACCOUNT_ROWS)]

    run(scenario)


def test_a_write_in_doubt_drops_its_clients_and_settles_the_session_before_reloading() -> None:
    async def scenario() -> None:
        store = FakeStore()
        store.hold = asyncio.Event()
        store.writes.append(Write.ANSWER_LOST)
        service = ExchangeService(store)
        async with serving(service):
            in_doubt = submit(service, new_account("1"))
            await wait_until(lambda: "write 1" in store.calls)
            behind = submit(service, new_account("2"))
            store.hold.set()
            await wait_until(lambda: in_doubt.settled and behind.settled)
            assert in_doubt.settled == [None]
            assert behind.settled == [ErrorCode.UNAVAILABLE]
            # the batch did commit: the reloaded exchange holds account 1
            again = await served(service, new_account("1"))
        assert again == [[Error(ErrorCode.ACCOUNT_EXISTS, (("id", "1"),))]]
        recovery = ["reset", "revive", f"end_session {SESSION_PID}", "load"]
        assert store.calls_after("write 1")[:4] == recovery
        assert store.batches == [(1, 1, ACCOUNT_ROWS)]

    run(scenario)


def test_a_commit_that_never_answers_is_in_doubt_once_its_deadline_passes() -> None:
    async def scenario() -> None:
        store = FakeStore()
        store.writes.append(Write.NEVER_ANSWERS)
        service = ExchangeService(store, commit_timeout=0.3)
        async with serving(service):
            started = time.monotonic()
            unanswered = submit(service, new_account("1"))
            await wait_until(lambda: unanswered.settled)
            waited = time.monotonic() - started
            assert unanswered.settled == [None]
            assert await served(service, new_account("1")) == [[AccountCreated("1")]]
        assert 0.3 <= waited < 5
        assert f"end_session {SESSION_PID}" in store.calls_after("write 1")

    run(scenario)


def test_a_request_larger_than_a_batch_gets_proportionally_longer() -> None:
    async def scenario() -> None:
        store = FakeStore()
        store.write_seconds = 2.0
        service = ExchangeService(store, commit_timeout=1.0, max_batch_rows=ACCOUNT_ROWS)
        async with serving(service):
            # three batches' worth of rows: 3 s to answer in 2 s
            large = submit(service, create(*(account(str(n), "1") for n in range(3))))
            await wait_until(lambda: large.settled)
            # one batch's worth: 1 s to answer in 2 s
            small = submit(service, new_account("9"))
            await wait_until(lambda: small.settled)
        assert large.settled == [[AccountCreated("0"), AccountCreated("1"), AccountCreated("2")]]
        assert small.settled == [None]

    run(scenario)


def test_while_the_database_is_down_every_request_is_refused_at_once() -> None:
    async def scenario() -> None:
        store = FakeStore()
        service = ExchangeService(store)
        async with serving(service):
            store.down = True
            failed = submit(service, new_account("1"))
            await wait_until(lambda: failed.settled)
            assert failed.settled == [ErrorCode.UNAVAILABLE]
            await wait_until(lambda: store.calls.count("load") >= 3)  # retrying
            for n in range(20):
                refused = submit(service, new_account(str(n)))
                assert refused.settled == [ErrorCode.UNAVAILABLE]  # before submit returned
            assert not service.ready
            store.down = False
            assert await served(service, new_account("1")) == [[AccountCreated("1")]]

    run(scenario)


def test_recovery_tries_again_until_a_load_succeeds_each_step_with_its_deadline() -> None:
    async def scenario() -> None:
        store = FakeStore()
        store.writes.append(Write.FAIL_BEFORE_SENDING)
        service = ExchangeService(store, recovery_timeout=0.2)
        async with serving(service):
            store.failing_loads = 2
            store.hanging_loads = 1
            started = time.monotonic()
            failed = submit(service, new_account("1"))
            await wait_until(lambda: service.ready and failed.settled)
            took = time.monotonic() - started
        assert failed.settled == [ErrorCode.UNAVAILABLE]
        assert store.calls_after("write 1") == ["reset", "revive", "load"] * 4
        assert 0.2 <= took < 5  # the hanging load was cancelled at its deadline

    run(scenario)


def test_batches_close_at_max_batch_rows_and_commit_in_order() -> None:
    async def scenario() -> None:
        store = FakeStore()
        store.hold = asyncio.Event()
        service = ExchangeService(store, max_batch_rows=2 * ACCOUNT_ROWS)
        released: list[Outcome] = []
        requests = [
            new_account("0"),  # batch 1, committing while the others are applied
            *(new_account(str(n)) for n in range(1, 5)),  # batches 2 and 3, two each
            create(*(account(f"x{n}", "1") for n in range(3))),  # batch 4, alone
            new_account("5"),  # batch 5, the one filling
        ]
        async with serving(service):
            outcomes = [Outcome(released) for _ in requests]
            service.submit(requests[0], outcomes[0])
            await wait_until(lambda: "write 1" in store.calls)
            for request, outcome in zip(requests[1:], outcomes[1:], strict=True):
                service.submit(request, outcome)
            store.hold.set()
            await wait_until(lambda: all(outcome.settled for outcome in outcomes))
        two, three = 2 * ACCOUNT_ROWS, 3 * ACCOUNT_ROWS
        assert store.batches == [
            (1, 1, ACCOUNT_ROWS),
            (2, 2, two),
            (3, 2, two),
            (4, 1, three),
            (5, 1, ACCOUNT_ROWS),
        ]
        assert released == outcomes
        assert all(isinstance(outcome.settled[0], list) for outcome in outcomes)

    run(scenario)


def test_the_configured_recovery_timeout_reaches_the_service() -> None:
    async def scenario() -> None:
        store = FakeStore()
        store.writes.append(Write.FAIL_BEFORE_SENDING)
        service = build_service(ServerConfig(recovery_timeout=0.2), store)
        async with serving(service):
            store.hanging_loads = 1
            failed = submit(service, new_account("1"))
            await wait_until(lambda: service.ready and failed.settled, within=5)
        assert store.calls_after("write 1") == ["reset", "revive", "load"] * 2

    run(scenario)
