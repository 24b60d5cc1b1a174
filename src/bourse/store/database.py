"""Connecting to PostgreSQL and bringing its schema up to date.

Users give a plain ``postgresql://`` URL (or none, for the embedded
server); this module turns it into SQLAlchemy's asyncpg form, opens the
engine, and applies the Alembic migrations. Only ``store`` imports
SQLAlchemy.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"

#: How bourse's sessions are named in ``pg_stat_activity``.
APPLICATION_NAME = "bourse"

#: Seconds to wait for a connection to PostgreSQL before giving up.
CONNECT_TIMEOUT = 5.0


def async_url(url: str) -> str:
    """``url`` with the asyncpg driver named, whatever driver it named."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def connection_pool(url: str, pool_size: int = 4) -> AsyncEngine:
    """A pool of asyncpg connections to ``url`` (SQLAlchemy calls it an engine;
    no connection is made yet)."""
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        pool_pre_ping=True,
        connect_args={
            "timeout": CONNECT_TIMEOUT,
            "server_settings": {"application_name": APPLICATION_NAME},
        },
    )


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(database: AsyncEngine) -> None:
    """Apply every migration not yet applied."""
    async with database.begin() as connection:
        await connection.run_sync(_upgrade)


_TERMINATE = text(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE pid = :pid AND application_name = :name"
)
_ALIVE = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid AND application_name = :name")

#: Seconds between checks that a terminated session is gone.
SESSION_END_POLL = 0.05


async def end_session(database: AsyncEngine, server_pid: int) -> None:
    """Terminate bourse's session ``server_pid`` if it still runs, and wait
    until PostgreSQL no longer lists it: its transaction is then either
    committed or rolled back, for good."""
    parameters = {"pid": server_pid, "name": APPLICATION_NAME}
    async with database.connect() as connection:
        await connection.execute(_TERMINATE, parameters)
        await connection.commit()
        while (await connection.execute(_ALIVE, parameters)).scalar_one():
            await connection.commit()
            await asyncio.sleep(SESSION_END_POLL)
