"""Connecting to PostgreSQL and bringing its schema up to date.

Users give a plain ``postgresql://`` URL (or none, for the embedded
server); this module turns it into SQLAlchemy's asyncpg form, opens the
engine, and applies the Alembic migrations. Only ``store`` imports
SQLAlchemy.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"

#: Seconds to wait for a connection to PostgreSQL before giving up.
CONNECT_TIMEOUT = 5.0


def async_url(url: str) -> str:
    """``url`` with the asyncpg driver named, whatever driver it named."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def open_database(url: str, pool_size: int = 4) -> AsyncEngine:
    """An asyncpg-backed engine for ``url`` (no connection is made yet)."""
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        pool_pre_ping=True,
        connect_args={"timeout": CONNECT_TIMEOUT},
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
