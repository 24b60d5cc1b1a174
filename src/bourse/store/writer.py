"""Committing a batch: one journal row, in one short statement.

The exchange cuts a ``ChangeSet`` (every changed row once, at its value at
the cut). The writer appends it, encoded as JSON (``journal_codec``), as
one row of the ``journal`` table: an ``INSERT`` sent outside an explicit transaction,
so the statement is its own transaction, one round trip and one small WAL
flush whatever the batch holds. The batch's replies may leave once it
returns. The documented tables are written from the journal behind the
critical path (``projection.py``).

The statement runs on a session kept for the writer's life
(``DedicatedSession``), which holds the writer's lock (``fence.claim``).
The caller is told, with the session's identity, the moment the statement
is sent: a failure before that means nothing was written; after it, the
outcome is in doubt until that session has ended.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bourse.core.changes import ChangeSet
from bourse.store.fence import SessionId, claim
from bourse.store.journal_codec import encode
from bourse.store.session import DedicatedSession

#: Called with the writing session just before a batch's statement goes
#: out: from then on, its outcome is in doubt until that session has ended.
StatementSent = Callable[[SessionId], None]

_APPEND = "INSERT INTO journal (batch_id, requests, rows, changes) VALUES ($1, $2, $3, $4)"

#: The last batch the database holds, projected or not.
LAST_BATCH = (
    "SELECT greatest((SELECT max(batch_id) FROM journal), (SELECT batch_id FROM projection), 0)"
)


class DivergedError(Exception):
    """The database's last batch is not the one before the batch to write:
    it is not the database the exchange was built from (after a failover,
    the new primary may lack the last batches). Nothing was written."""


class BatchWriter:
    """Appends batches to the journal on one dedicated session.

    A new session may reach another server than the last one did: with
    several hosts in the URL, the primary may have failed over while no
    batch was in flight. So the first batch on each new session checks
    first that the database's last batch is the one before it, and raises
    ``DivergedError`` (nothing written) when it is not: the exchange must
    then be rebuilt from the database, as after any failure.
    """

    def __init__(self, database: AsyncEngine) -> None:
        self._session = DedicatedSession(database)
        self._session_id: SessionId | None = None
        #: True until the session's first batch has checked it follows on.
        self._unchecked = False

    async def write(
        self, batch_id: int, requests: int, changes: ChangeSet, statement_sent: StatementSent
    ) -> None:
        """Append ``changes`` as batch ``batch_id``, atomically and durably.

        ``statement_sent`` is called with the session just before the
        statement goes out: an exception raised before that call means
        nothing was written.
        """
        encoded = encode(changes)
        session, session_id = await self.open_session()
        if self._unchecked:
            last = await session.fetchval(LAST_BATCH)
            if last != batch_id - 1:
                raise DivergedError(
                    f"the database's last batch is {last}, not {batch_id - 1} as the "
                    "exchange's: it was not built from this database"
                )
            self._unchecked = False
        statement_sent(session_id)
        await session.execute(_APPEND, batch_id, requests, changes.row_count(), encoded)

    async def open_session(self) -> tuple[Any, SessionId]:
        """The writing session, opened if need be; opening it takes the
        writer's lock (``fence.claim``), or raises ``FencedOutError``."""
        session, opened = await self._session.open()
        if opened:
            try:
                self._session_id = await claim(session)
            except BaseException:
                await self.forget_session()
                raise
            self._unchecked = True
        assert self._session_id is not None
        return session, self._session_id

    async def forget_session(self) -> None:
        """Drop the session without waiting on the server (it may no longer
        answer); the next batch opens a new one."""
        self._session_id = None
        await self._session.forget()

    async def close(self) -> None:
        """Close the session cleanly."""
        self._session_id = None
        await self._session.close()
