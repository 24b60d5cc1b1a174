"""One database session kept open for one job (writing the journal,
projecting it), on the driver's own connection.

Each job that writes all the time holds its own session rather than
borrowing from the pool per write: no checkout, no liveness ping, and
SQLAlchemy's per-call work (which costs more than a round trip at these
rates) is skipped by talking to asyncpg directly. A failure makes the owner
``forget`` the session; the next use opens a fresh one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class DedicatedSession:
    """A session of ``database`` opened on first use and kept."""

    def __init__(self, database: AsyncEngine) -> None:
        self._database = database
        self._connection: AsyncConnection | None = None
        self._session: Any = None

    @property
    def is_open(self) -> bool:
        """True while a session is held (it may still have been ended by the server)."""
        return self._session is not None

    async def open(self) -> tuple[Any, bool]:
        """The asyncpg connection, and True when it was opened by this call."""
        if self._session is not None and self._session.is_closed():
            await self.forget()  # the server ended it; nothing was sent on it
        if self._session is not None:
            return self._session, False
        connection = await self._database.connect()
        session = (await connection.get_raw_connection()).driver_connection
        assert session is not None
        self._connection, self._session = connection, session
        return session, True

    async def forget(self) -> None:
        """Drop the session without waiting on the server (it may no longer
        answer): its socket is closed at once."""
        connection, session = self._connection, self._session
        self._connection = self._session = None
        if session is not None:
            session.terminate()
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.invalidate()

    async def close(self) -> None:
        """Close the session cleanly."""
        connection, self._connection, self._session = self._connection, None, None
        if connection is not None:
            await connection.close()


@contextlib.asynccontextmanager
async def pooled_session(database: AsyncEngine) -> AsyncIterator[Any]:
    """A session borrowed from the pool for one job, as the asyncpg connection."""
    async with database.connect() as connection:
        session = (await connection.get_raw_connection()).driver_connection
        assert session is not None
        yield session
