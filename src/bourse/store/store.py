"""The exchange's system of record, as the server sees it.

One object bundles the database engine, the migrations, the batch writer
and the recovery loader, so the server never touches SQLAlchemy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bourse.core.changes import ChangeSet
from bourse.core.engine import Engine
from bourse.core.restore import restore_engine
from bourse.store.audit import audit_database
from bourse.store.database import migrate, open_database, settle_session
from bourse.store.loader import StoredState, load_state
from bourse.store.writer import BatchWriter


class Store:
    """PostgreSQL at ``url``: write batches, load the exchange back.

    ``revive``, when given, is called (in a worker thread) before each
    attempt to reach the database during recovery: the embedded server
    passes its own restart there.
    """

    def __init__(self, url: str, revive: Callable[[], object] | None = None) -> None:
        self._database = open_database(url)
        self._writer = BatchWriter(self._database)
        self._revive = revive

    async def revive(self) -> None:
        """Bring the database back if this store knows how."""
        if self._revive is not None:
            await asyncio.to_thread(self._revive)

    async def migrate(self) -> None:
        """Bring the schema up to date."""
        await migrate(self._database)

    async def write(
        self,
        batch_id: int,
        requests: int,
        changes: ChangeSet,
        statement_sent: Callable[[int], None],
    ) -> None:
        """Commit one batch (see ``writer.BatchWriter.write``)."""
        await self._writer.write(batch_id, requests, changes, statement_sent)

    async def load(self) -> StoredState:
        """Everything committed so far."""
        return await load_state(self._database)

    async def load_engine(self) -> tuple[Engine, int]:
        """A fresh engine holding everything committed, and the last batch id."""
        state = await self.load()
        engine = restore_engine(
            symbols=state.symbols,
            accounts=state.accounts,
            positions=state.positions,
            orders=state.orders,
            executions=state.executions,
            deposits=state.deposits,
        )
        return engine, state.last_batch_id

    async def settle(self, server_pid: int) -> None:
        """Make sure the session ``server_pid``, whose COMMIT is in doubt, has
        ended (terminating it if needed), so that what is read next already
        holds its outcome, whichever it was."""
        await settle_session(self._database, server_pid)

    async def audit(self) -> list[str]:
        """The invariants the stored exchange breaks (see ``audit.py``)."""
        return await audit_database(self._database)

    async def reset_connections(self) -> None:
        """Forget every connection (after a failure left them in doubt)."""
        await self._writer.forget_session()
        await self._database.dispose(close=False)

    async def close(self) -> None:
        """Close every connection."""
        await self._writer.close()
        await self._database.dispose()
