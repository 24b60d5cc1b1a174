"""The exchange's system of record, as the server sees it.

One object bundles the connection pool, the migrations, the journal
writer, the projection behind it and the recovery loader, so the server
never touches SQLAlchemy.

Reviving the embedded PostgreSQL blocks (it runs ``pg_ctl``), so it runs on
a thread of its own: in the default executor it could wait for ever behind
work that holds those threads, which is the moment the exchange most needs
it. An attempt its caller gave up waiting for is awaited again, not queued
behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor

from bourse.core.changes import ChangeSet
from bourse.core.exchange import Exchange
from bourse.core.lookup import StoredOrder
from bourse.core.restore import restore_exchange
from bourse.store.audit import audit_database
from bourse.store.database import connection_pool, end_session, migrate
from bourse.store.fence import SessionId
from bourse.store.loader import load_state
from bourse.store.lookups import read_orders
from bourse.store.projection import catch_up
from bourse.store.projector import Projector
from bourse.store.replication import Replication, read_replication
from bourse.store.session import pooled_session
from bourse.store.writer import BatchWriter, StatementSent

log = logging.getLogger(__name__)

#: Rows of committed batches the projection may trail by before commits
#: wait for it, unless told otherwise.
MAX_LAG_ROWS = 200_000

#: Seconds a clean close waits for the projection to catch up; what is
#: left stays in the journal and is projected at the next start.
CLOSE_DRAIN_SECONDS = 10.0


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection meanwhile: loading creates millions of objects
    that all live on, and the collections their allocations set off rescan
    them again and again (half the time of loading a million orders)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Store:
    """PostgreSQL at ``url``: write batches, load the exchange back.

    ``revive``, when given, is called (on a thread of its own) before each
    attempt to reach the database during recovery: the embedded server
    passes its own restart there. ``max_lag_rows`` bounds the rows of
    committed batches not yet projected (``Projector``); ``observe_lag`` is
    told the seconds each projected window trailed its oldest commit.
    """

    def __init__(
        self,
        url: str,
        revive: Callable[[], object] | None = None,
        *,
        max_lag_rows: int = MAX_LAG_ROWS,
        observe_lag: Callable[[float], None] | None = None,
    ) -> None:
        self._database = connection_pool(url)
        self._writer = BatchWriter(self._database)
        self.projector = Projector(
            self._database, max_lag_rows=max_lag_rows, observe_lag=observe_lag
        )
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
        """Commit one batch to the journal (see ``writer.BatchWriter.write``);
        the projection writes the tables from it later."""
        await self._writer.write(batch_id, requests, changes, statement_sent)
        self.projector.add(batch_id, changes.row_count())

    async def wait_for_room(self) -> None:
        """Return once the projection is close enough behind for another
        commit (see ``Projector.wait_for_room``)."""
        await self.projector.wait_for_room()

    async def catch_up(self) -> int:
        """Project whatever the journal holds beyond the watermark; the last
        batch the tables then hold."""
        async with pooled_session(self._database) as session:
            return await catch_up(session)

    async def load(self) -> ChangeSet:
        """The live state committed so far (open orders only, deposits
        summed), as the change set that builds it."""
        await self.catch_up()
        return (await load_state(self._database)).stored

    async def load_exchange(self) -> tuple[Exchange, int]:
        """A fresh exchange holding the live state committed, and the last
        batch id; the projection then goes on behind the batches to come."""
        await self.projector.stop()
        await self.catch_up()
        with _collector_paused():
            live = await load_state(self._database)
            exchange = restore_exchange(live.stored, issued=live.issued, trades=live.trades)
        self.projector.start(live.last_batch_id)
        return exchange, live.last_batch_id

    async def stored_orders(self, order_ids: Collection[int]) -> dict[int, StoredOrder]:
        """The orders among ``order_ids`` that the tables hold."""
        return await read_orders(self._database, order_ids)

    def watch_projection(self, projected: Callable[[int], None]) -> None:
        """Have ``projected`` told the watermark after each projected window."""
        self.projector.projected = projected

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
        """Stop projecting and forget every connection (after a failure left
        them in doubt)."""
        await self.projector.stop()
        await self._writer.forget_session()
        await self._database.dispose(close=False)

    async def close(self) -> None:
        """Close every connection, once a revive still running has ended
        (the embedded server is stopped next, and not from two threads)."""
        if self._reviving is not None:
            with contextlib.suppress(Exception):
                await self._reviving
        self._reviver.shutdown()
        try:
            await asyncio.wait_for(self.projector.drain(), CLOSE_DRAIN_SECONDS)
        except TimeoutError:
            log.warning("the projection is behind at close; the next start finishes it")
        await self.projector.close()
        await self._writer.close()
        await self._database.dispose()
