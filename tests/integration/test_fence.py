"""The writing session on real PostgreSQL: one writer per database, a
session in doubt named so that no other session matches it, and a new
session that finds the database behind the exchange writes nothing.

Runs against both clusters (embedded and external).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg  # type: ignore[import-untyped]
import pytest

from bourse.store.database import SESSION_SETTINGS, libpq_url
from bourse.store.fence import FencedOutError, SessionId
from bourse.store.store import Store
from bourse.store.writer import DivergedError
from tests.builders import account, create

pytestmark = pytest.mark.timeout(120)


async def _write_one_account(store: Store, account_id: str, batch_id: int) -> SessionId:
    exchange, _ = await store.load_exchange()
    exchange.apply(create(account(account_id, "10")), 1_700_000_000)
    sessions: list[SessionId] = []
    await store.write(batch_id, 1, exchange.take_changes(), sessions.append)
    return sessions[0]


def test_a_second_store_is_fenced_out_until_the_first_lets_go(database_url: str) -> None:
    async def scenario() -> None:
        first, second = Store(database_url), Store(database_url)
        try:
            await first.migrate()
            await first.claim()
            with pytest.raises(FencedOutError, match="another bourse writes to this database"):
                await second.claim()
            with pytest.raises(FencedOutError):  # a write claims first: nothing is sent
                await _write_one_account(second, "2", 1)
            await _write_one_account(first, "1", 1)
            await first.reset_connections()  # the writing session ends: the lock is free
            await second.claim()
            await _write_one_account(second, "2", 2)
            accounts = {row.account_id for row in (await second.load()).accounts}
            assert accounts == {"1", "2"}
        finally:
            await first.close()
            await second.close()

    asyncio.run(scenario())


def test_ending_a_session_in_doubt_ends_that_session_and_no_other(database_url: str) -> None:
    async def scenario() -> None:
        store = Store(database_url)
        in_doubt = await asyncpg.connect(libpq_url(database_url), server_settings=SESSION_SETTINGS)
        observer = await asyncpg.connect(libpq_url(database_url))
        listed = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1"
        try:
            pid, started = await in_doubt.fetchrow(
                "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            )
            elsewhere = SessionId(pid, started - timedelta(seconds=1))  # that pid on another server
            await asyncio.wait_for(store.end_session(elsewhere), 10)
            assert await in_doubt.fetchval("SELECT 1") == 1
            await asyncio.wait_for(store.end_session(SessionId(pid, started)), 10)
            assert await observer.fetchval(listed, pid) == 0
        finally:
            in_doubt.terminate()
            await observer.close()
            await store.close()

    asyncio.run(scenario())


def test_a_new_session_on_a_database_behind_the_exchange_writes_nothing(database_url: str) -> None:
    """What a failover to a standby that lacks the last batches looks like
    to the writer: its next session finds the database's last batch is not
    the one before the batch to write, and refuses before sending it."""

    async def scenario() -> None:
        store = Store(database_url)
        try:
            await store.migrate()
            await _write_one_account(store, "1", 1)
            await store.reset_connections()  # as when the primary is lost between batches
            with pytest.raises(DivergedError, match="last batch is 1, not 2"):
                await _write_one_account(store, "3", 3)
            assert {row.account_id for row in (await store.load()).accounts} == {"1"}
            await _write_one_account(store, "2", 2)  # the batch that follows on is written
        finally:
            await store.close()

    asyncio.run(scenario())
