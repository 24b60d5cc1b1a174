"""Connecting to PostgreSQL and bringing its schema up to date.

Users give a libpq ``postgresql://`` URL (or none, for the embedded
server), possibly naming several hosts (``h1:5432,h2:5432``) of a
replicated cluster. The URL goes to asyncpg as it is, so every libpq form
it reads works, and each new session goes to a host that accepts writes
(``target_session_attrs=read-write`` unless the URL asks otherwise): after
a failover, the next connection finds the new primary. SQLAlchemy pools
those sessions and runs the Alembic migrations on them. Only ``store``
imports SQLAlchemy.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg  # type: ignore[import-untyped]
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"

#: How bourse's sessions are named in ``pg_stat_activity``.
APPLICATION_NAME = "bourse"

#: Seconds to wait for a connection to PostgreSQL before giving up.
CONNECT_TIMEOUT = 5.0


#: Server settings of every session: its name, and TCP keepalives short
#: enough that a session whose bourse host vanished (power, network) ends
#: within about 25 s, releasing what it held (the writer's lock).
SESSION_SETTINGS = {
    "application_name": APPLICATION_NAME,
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}

SCHEMES = ("postgresql", "postgres")


def libpq_url(url: str) -> str:
    """``url`` as libpq and asyncpg read it: a driver named in the scheme
    (``postgresql+psycopg://``) is dropped; anything else than PostgreSQL
    is refused."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.split("+", 1)[0] not in SCHEMES:
        raise ValueError(f"not a PostgreSQL URL: {scheme}://…")
    return f"postgresql://{rest}"


def session_options(url: str) -> dict[str, Any]:
    """How asyncpg opens each session to ``url``: writable hosts only unless
    the URL says which it wants."""
    options: dict[str, Any] = {"timeout": CONNECT_TIMEOUT, "server_settings": SESSION_SETTINGS}
    if "target_session_attrs" not in parse_qs(urlsplit(url).query):
        options["target_session_attrs"] = "read-write"
    return options


def connection_pool(url: str, pool_size: int = 4) -> AsyncEngine:
    """A pool of asyncpg sessions to ``url`` (SQLAlchemy calls it an engine;
    no session is opened yet)."""
    dsn = libpq_url(url)
    options = session_options(dsn)

    async def open_session() -> asyncpg.Connection:
        return await asyncpg.connect(dsn, **options)

    return create_async_engine(
        "postgresql+asyncpg://",
        async_creator=open_session,
        pool_size=pool_size,
        pool_pre_ping=True,
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
    "WHERE pid = :pid AND backend_start = :started AND application_name = :name"
)
_ALIVE = text(
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE pid = :pid AND backend_start = :started AND application_name = :name"
)

#: Seconds between checks that a terminated session is gone.
SESSION_END_POLL = 0.05


async def end_session(database: AsyncEngine, pid: int, started: datetime) -> None:
    """Terminate bourse's session (server process ``pid``, started at
    ``started``) if it still runs, and wait until PostgreSQL no longer
    lists it: its transaction is then either committed or rolled back, for
    good. On another server than the session's (after a failover, or a
    restart), nothing matches: that session is gone with its server."""
    parameters = {"pid": pid, "started": started, "name": APPLICATION_NAME}
    async with database.connect() as connection:
        await connection.execute(_TERMINATE, parameters)
        await connection.commit()
        while (await connection.execute(_ALIVE, parameters)).scalar_one():
            await connection.commit()
            await asyncio.sleep(SESSION_END_POLL)
