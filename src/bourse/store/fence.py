"""One writer per database: the lock that fences a second bourse out.

Two exchanges writing to one database would interleave batches and corrupt
each other's books. The session that writes batches therefore holds a
PostgreSQL advisory lock for its whole life, taken when it opens; a bourse
that cannot take it writes nothing, says who holds it, and stands by until
the holder is gone. The lock lives and dies with that session: when the
holding bourse stops, crashes or loses its host (the session's TCP
keepalives end it within about 25 s), PostgreSQL releases it, and a
standing-by bourse takes it on its next attempt. After a failover the new
primary holds no lock at all, so the first bourse to reach it claims it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

#: The advisory lock's two keys: ``"bour"`` in ASCII, and 1 for the exchange.
LOCK_KEYS = (0x626F7572, 1)

_CLAIM = """
SELECT pg_try_advisory_lock($1, $2), pg_backend_pid(), backend_start
FROM pg_stat_activity WHERE pid = pg_backend_pid()
"""

_HOLDER = """
SELECT a.pid, coalesce(host(a.client_addr), 'a local socket'), a.application_name,
       a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.classid = CAST($1 AS oid)
  AND l.objid = CAST($2 AS oid) AND l.objsubid = 2 AND l.granted
"""


class FencedOutError(Exception):
    """Another session holds the writer's lock: another bourse writes here."""


class SessionId(NamedTuple):
    """One database session, named so that no other matches it: its server
    process id and the time it started (a pid alone may be reused, or name
    a session of another server after a failover)."""

    pid: int
    started: datetime


async def claim(session: Any) -> SessionId:
    """Take the writer's lock on ``session`` (an asyncpg connection); the
    session, as ``pg_stat_activity`` names it. Raises ``FencedOutError``,
    saying who holds the lock, if another session has it."""
    taken, pid, started = await session.fetchrow(_CLAIM, *LOCK_KEYS)
    if not taken:
        raise FencedOutError(await _describe_holder(session))
    return SessionId(pid, started)


async def _describe_holder(session: Any) -> str:
    holder = await session.fetchrow(_HOLDER, *LOCK_KEYS)
    if holder is None:
        return "another session held the writer's lock a moment ago"
    pid, address, name, started = holder
    return (
        f"another bourse writes to this database (session {pid} of {name!r} "
        f"from {address}, connected since {started:%Y-%m-%d %H:%M:%S %Z})"
    )
