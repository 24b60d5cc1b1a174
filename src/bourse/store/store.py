"""The exchange's system of record, as the server sees it.

One object bundles the connection pool, the migrations, the batch writer
and the recovery loader, so the server never touches SQLAlchemy.

Reviving the embedded PostgreSQL blocks (it runs ``pg_ctl``), so it runs on
a thread of its own: in the default executor it could wait for ever behind
work that holds those threads, which is the moment the exchange most needs
it. An attempt its caller gave up waiting for is awaited again, not queued
behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bourse.core.changes import ChangeSet
from bourse.core.exchange import Exchange
from bourse.core.restore import restore_exchange
from bourse.store.audit import audit_database
from bourse.store.database import connection_pool, end_session, migrate
from bourse.store.fence import SessionId
from bourse.store.loader import load_state
from bourse.store.replication import Replication, read_replication
from bourse.store.writer import BatchWriter, StatementSent


class Store:
    """PostgreSQL at ``url``: write batches, load the exchange back.

    ``revive``, when given, is called (on a thread of its own) before each
    attempt to reach the database during recovery: the embedded server
    passes its own restart there.
    """

    def __init__(self, url: str, revive: Callable[[], object] | None = None) -> None:
        self._database = connection_pool(url)
        self._writer = BatchWriter(self._database)
        self._revive = revive
        self._reviver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bourse-revive")
        self._reviving: asyncio.Future[object] | None = None

    async def revive(self) -> None:
        """Bring the database back if this store knows how. Cancelling the
        wait (a deadline) leaves the attempt running; the next call waits
        for that same attempt."""
        if self._revive is None:
            return
        if self._reviving is None or self._reviving.done():
            loop = asyncio.get_running_loop()
            self._reviving = loop.run_in_executor(self._reviver, self._revive)
        await asyncio.shield(self._reviving)

    async def migrate(self) -> None:
        """Bring the schema up to date."""
        await migrate(self._database)

    async def write(
        self, batch_id: int, requests: int, changes: ChangeSet, statement_sent: StatementSent
    ) -> None:
        """Commit one batch (see ``writer.BatchWriter.write``)."""
        await self._writer.write(batch_id, requests, changes, statement_sent)

    async def load(self) -> ChangeSet:
        """Everything committed so far, as the change set that builds it."""
        stored, _ = await load_state(self._database)
        return stored

    async def load_exchange(self) -> tuple[Exchange, int]:
        """A fresh exchange holding everything committed, and the last batch id."""
        stored, last_batch_id = await load_state(self._database)
        return restore_exchange(stored), last_batch_id

    async def claim(self) -> None:
        """Become the database's one writer: open the writing session, which
        takes the writer's lock, or raise ``fence.FencedOutError``."""
        await self._writer.open_session()

    async def replication(self) -> Replication:
        """The primary's replication, as it stands now."""
        return await read_replication(self._database)

    async def end_session(self, session: SessionId) -> None:
        """Make sure ``session``, whose COMMIT is in doubt, has ended
        (terminating it if needed), so that what is read next already holds
        its outcome, whichever it was."""
        await end_session(self._database, session.pid, session.started)

    async def audit(self) -> list[str]:
        """The invariants the stored exchange breaks (see ``audit.py``)."""
        return await audit_database(self._database)

    async def reset_connections(self) -> None:
        """Forget every connection (after a failure left them in doubt)."""
        await self._writer.forget_session()
        await self._database.dispose(close=False)

    async def close(self) -> None:
        """Close every connection, once a revive still running has ended
        (the embedded server is stopped next, and not from two threads)."""
        if self._reviving is not None:
            with contextlib.suppress(Exception):
                await self._reviving
        self._reviver.shutdown()
        await self._writer.close()
        await self._database.dispose()
