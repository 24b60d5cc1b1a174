"""What protects an acknowledged batch beyond the primary: its replication.

A batch is acknowledged once its COMMIT returns. On a primary with
``synchronous_standby_names`` set (and ``synchronous_commit`` at ``on``,
``remote_write`` or ``remote_apply``), COMMIT returns only when a
synchronous standby has the batch too, so losing the primary's machine
loses nothing acknowledged. With asynchronous standbys (the setting empty)
a failover can lose the last batches acknowledged; with no standby, losing
the machine loses the exchange. This module reads which case holds, so
that the server can say so at start and, when asked to, refuse to
acknowledge while no synchronous standby is attached.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

#: ``synchronous_commit`` values that wait for a synchronous standby.
WAITING_COMMITS = frozenset({"on", "remote_write", "remote_apply"})

_SETTINGS = text(
    "SELECT current_setting('synchronous_standby_names'), current_setting('synchronous_commit')"
)
#: Streaming standbys; a role without ``pg_monitor`` sees their rows with
#: the state hidden (NULL), reported as ``HIDDEN``.
_STANDBYS = text(
    "SELECT application_name, coalesce(sync_state, :hidden) FROM pg_stat_replication "
    "WHERE state = 'streaming' OR state IS NULL ORDER BY application_name"
)
HIDDEN = "hidden"


@dataclass(frozen=True, slots=True)
class Replication:
    """The primary's replication settings and the standbys streaming from it."""

    standby_names: str
    synchronous_commit: str
    #: ``(application_name, sync_state)`` of each streaming standby.
    standbys: tuple[tuple[str, str], ...]

    @property
    def synchronous(self) -> bool:
        """True when a COMMIT returns only once a standby has it."""
        return (
            bool(self.standby_names)
            and self.synchronous_commit in WAITING_COMMITS
            and any(state in ("sync", "quorum") for _, state in self.standbys)
        )

    def describe(self) -> tuple[int, str]:
        """A log level and a line saying what an acknowledgement survives."""
        if any(state == HIDDEN for _, state in self.standbys):
            return logging.WARNING, (
                "bourse's database role cannot see pg_stat_replication (grant it "
                "pg_monitor): whether acknowledged batches survive a failover is unknown"
            )
        if self.synchronous:
            names = ", ".join(f"{name} ({state})" for name, state in self.standbys)
            return logging.INFO, (
                f"database replication is synchronous: a batch is acknowledged once a "
                f"standby has it too (standbys: {names})"
            )
        if self.standby_names and self.synchronous_commit not in WAITING_COMMITS:
            return logging.WARNING, (
                f"synchronous_commit is {self.synchronous_commit!r}: COMMIT does not wait for "
                "the synchronous standby, so a failover can lose acknowledged batches"
            )
        if self.standby_names:
            return logging.WARNING, (
                f"synchronous_standby_names is {self.standby_names!r} but no synchronous "
                "standby is streaming: every commit waits until one attaches"
            )
        if self.standbys:
            return logging.WARNING, (
                "database replication is asynchronous (synchronous_standby_names is empty): "
                "a failover can lose the last batches acknowledged"
            )
        return logging.INFO, (
            "the database is not replicated: losing its machine loses the exchange "
            "(docs/operations.md)"
        )


async def read_replication(database: AsyncEngine) -> Replication:
    """The replication of the primary ``database`` reaches."""
    async with database.connect() as connection:
        names, commit = (await connection.execute(_SETTINGS)).one()
        standbys = (await connection.execute(_STANDBYS, {"hidden": HIDDEN})).all()
    return Replication(names, commit, tuple((name, state) for name, state in standbys))
