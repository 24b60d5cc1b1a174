"""The engine process's supervision holds no thread another part needs.

Gateways are watched through pidfds, not by a thread each; reviving the
embedded PostgreSQL has a thread of its own, never queued behind others;
every step of a recovery has a deadline, so one that hangs is retried.
Before these, eight gateways filled a 2-core machine's default executor
and a revive queued behind them waited for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import psutil  # type: ignore[import-untyped]
import uvloop

from bourse.core.changes import ChangeSet
from bourse.core.errors import ErrorCode
from bourse.core.exchange import Exchange
from bourse.core.results import Result
from bourse.server.binding import bind_address
from bourse.server.config import ServerConfig
from bourse.server.service import ExchangeService
from bourse.server.supervisor import Gateways
from bourse.store.fence import SessionId
from bourse.store.replication import Replication
from bourse.store.store import Store
from tests.builders import account, create
from tests.unit.fake_store import UNREPLICATED

#: A URL no test connects to: the stores here never reach a database.
UNUSED_URL = "postgresql://bourse@/unused?host=/nonexistent"

GATEWAYS = 8

#: More threads than any default executor has (at most 32).
EXECUTOR_FILLERS = 40


def run_on_uvloop(coroutine: Coroutine[Any, Any, None]) -> None:
    """The server's own event loop."""
    uvloop.run(coroutine)


async def wait_until(condition: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def reaped(pid: int) -> bool:
    """Whether ``pid`` is gone for good (not even a zombie)."""
    return not psutil.pid_exists(pid)


# gateways


async def start_gateways(failures: list[BaseException]) -> Gateways:
    config = ServerConfig(host="127.0.0.1", port=0, workers=GATEWAYS)
    bound = bind_address("127.0.0.1", 0, shared=False, backlog=16)
    service = ExchangeService(Store(UNUSED_URL))
    gateways = Gateways(config, bound, None, service, failures.append)
    await gateways.start()
    return gateways


async def supervise_eight_gateways() -> None:
    failures: list[BaseException] = []
    threads = threading.active_count()
    gateways = await start_gateways(failures)
    try:
        assert len(gateways.pids) == GATEWAYS
        assert threading.active_count() == threads
        victim = gateways.pids[3]
        os.kill(victim, signal.SIGKILL)
        await wait_until(lambda: gateways.pids[3] != victim, within=15)
        assert reaped(victim)
        assert threading.active_count() == threads
        os.kill(gateways.pids[5], signal.SIGSTOP)  # ignores SIGTERM until killed
        last = gateways.pids
        started = time.monotonic()
    finally:
        await gateways.stop(timeout=1.0)
    assert 1.0 <= time.monotonic() - started < 10
    assert all(reaped(pid) for pid in last)
    assert threading.active_count() == threads
    assert failures == []


def test_gateways_are_watched_without_threads_restarted_and_stopped() -> None:
    run_on_uvloop(supervise_eight_gateways())


def signalled_gone(pid: int) -> bool:
    """Whether ``pid`` is reaped, asked without opening a descriptor."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def restart_while_no_descriptor_is_left() -> None:
    failures: list[BaseException] = []
    config = ServerConfig(host="127.0.0.1", port=0, workers=1, gateway_restart_delay=0.2)
    bound = bind_address("127.0.0.1", 0, shared=False, backlog=16)
    gateways = Gateways(config, bound, None, ExchangeService(Store(UNUSED_URL)), failures.append)
    await gateways.start()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        (victim,) = gateways.pids
        resource.setrlimit(resource.RLIMIT_NOFILE, (3, hard))  # no new descriptor at all
        os.kill(victim, signal.SIGKILL)
        await wait_until(lambda: signalled_gone(victim), within=15)
        await asyncio.sleep(1.0)  # several attempts, each out of descriptors
        assert gateways.pids == [victim]
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        await wait_until(lambda: gateways.pids != [victim], within=15)
        assert psutil.pid_exists(gateways.pids[0])
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        await gateways.stop(timeout=5.0)
        bound.close()
    assert failures == []


def test_a_gateway_that_cannot_be_started_again_is_retried_until_it_can() -> None:
    run_on_uvloop(restart_while_no_descriptor_is_left())


# reviving the embedded server


async def revive_beside_a_full_default_executor() -> None:
    release = threading.Event()
    fillers = [asyncio.to_thread(release.wait) for _ in range(EXECUTOR_FILLERS)]
    blocked = asyncio.gather(*fillers)
    revived_on: list[str] = []
    store = Store(UNUSED_URL, revive=lambda: revived_on.append(threading.current_thread().name))
    try:
        await asyncio.wait_for(store.revive(), 5.0)
    finally:
        release.set()
        await blocked
        await store.close()
    assert len(revived_on) == 1
    assert revived_on[0].startswith("bourse-revive")


def test_revive_runs_while_the_default_executor_is_full() -> None:
    run_on_uvloop(revive_beside_a_full_default_executor())


async def revive_past_its_deadline() -> None:
    release = threading.Event()
    calls: list[int] = []

    def slow_revive() -> None:
        calls.append(1)
        release.wait()

    store = Store(UNUSED_URL, revive=slow_revive)
    try:
        for _ in range(3):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(store.revive(), 0.1)
        assert len(calls) == 1  # the running attempt was awaited again, not repeated
        release.set()
        await asyncio.wait_for(store.revive(), 5.0)
        assert len(calls) == 1
        await asyncio.wait_for(store.revive(), 5.0)
        assert len(calls) == 2  # a finished attempt is not reused
    finally:
        release.set()
        await store.close()


def test_a_revive_past_its_deadline_is_awaited_again_not_repeated() -> None:
    run_on_uvloop(revive_past_its_deadline())


# recovery


async def hang() -> None:
    await asyncio.Event().wait()


class FirstCallsHangStore(Store):
    """A database the first commit fails on; then, during recovery, each of
    forgetting the connections, reviving and loading hangs the first time."""

    def __init__(self) -> None:
        super().__init__(UNUSED_URL)
        self.calls: dict[str, int] = {}

    def _called(self, step: str) -> int:
        self.calls[step] = self.calls.get(step, 0) + 1
        return self.calls[step]

    async def migrate(self) -> None:
        pass

    async def claim(self) -> None:
        pass

    async def replication(self) -> Replication:
        return UNREPLICATED

    async def write(
        self,
        batch_id: int,
        requests: int,
        changes: ChangeSet,
        statement_sent: Callable[[SessionId], None],
    ) -> None:
        if self._called("write") == 1:
            raise ConnectionRefusedError("the database is down")

    async def reset_connections(self) -> None:
        if self._called("reset") == 1:
            await hang()

    async def revive(self) -> None:
        if self._called("revive") == 1:
            await hang()

    async def load_exchange(self) -> tuple[Exchange, int]:
        if self._called("load") == 2:  # the first load is the start's
            await hang()
        return Exchange(), 0


class Outcome:
    """A ``Pending`` that remembers how it was settled."""

    def __init__(self) -> None:
        self.settled: list[object] = []

    def release(self, results: Sequence[Result]) -> None:
        self.settled.append(list(results))

    def refuse(self, code: ErrorCode) -> None:
        self.settled.append(code)

    def drop(self) -> None:
        self.settled.append(None)


async def recover_through_hanging_steps() -> None:
    store = FirstCallsHangStore()
    service = ExchangeService(store, recovery_timeout=0.2)
    await service.start()
    committer = asyncio.create_task(service.run())
    try:
        failed = Outcome()
        service.submit(create(account("1", "5")), failed)
        await wait_until(lambda: bool(failed.settled), within=5)
        assert failed.settled == [ErrorCode.UNAVAILABLE]
        await wait_until(lambda: service.ready, within=10)
        assert store.calls == {"write": 1, "reset": 4, "revive": 3, "load": 3}
        served = Outcome()
        service.submit(create(account("1", "5")), served)
        await wait_until(lambda: bool(served.settled), within=5)
        assert served.settled != [ErrorCode.UNAVAILABLE]
    finally:
        committer.cancel()
        await store.close()


def test_a_recovery_step_that_hangs_is_retried() -> None:
    run_on_uvloop(recover_through_hanging_steps())
