"""The projection, running behind the commits.

Once a batch's journal row has committed, the projector is told its number
and size, and has PostgreSQL write the documented tables from the journal
in windows of consecutive batches (``projection.project``), each window
one transaction that also moves the watermark. Nothing waits for it but
the tables' readers: replies have already left. The work is PostgreSQL's:
this process only sends each window's bounds. Unless a full window is
waiting, the projector lets batches gather for ``GATHER_SECONDS`` first,
so that the fixed cost of a window is shared by many batches.

The projector's queue is bounded: when the batches not yet projected hold
more than ``max_lag_rows`` rows, ``wait_for_room`` makes the committer wait
before the next commit, so that when the projection cannot keep up, the
exchange slows down its acknowledgements instead of letting the lag and the
memory it holds grow. A window that fails to write (the database is down)
is tried again every ``RETRY_INTERVAL`` seconds. One that finds the
watermark moved ahead (another projector wrote some of these batches from
the same journal) goes on after it; one that finds it anywhere else, or the
journal lacking a batch, makes ``wait_for_room`` raise
``ProjectionFailedError``, so the exchange is rebuilt from the database
(which projects the journal itself on the way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from bourse.store.projection import WINDOW_ROWS, ProjectionConflictError, project, watermark
from bourse.store.session import DedicatedSession

log = logging.getLogger(__name__)

RETRY_INTERVAL = 0.5

#: Seconds the projector lets committed batches gather before writing a
#: window that is not full: each window costs PostgreSQL a fixed price
#: (planning, the watermark, the commit), and at 1 order per request
#: windows of two batches cost it 75 µs per request against 52 for
#: windows of twenty.
GATHER_SECONDS = 0.02


class ProjectionFailedError(Exception):
    """The projector found the tables moved under it; the exchange must be rebuilt."""


@dataclass(slots=True)
class ProjectionStats:
    """What the projector has done since it started."""

    windows: int = 0
    batches: int = 0
    rows: int = 0


class Projector:
    """Projects committed batches, in order, from one dedicated session."""

    def __init__(
        self,
        database: AsyncEngine,
        *,
        max_lag_rows: int,
        observe_lag: Callable[[float], None] | None = None,
    ) -> None:
        self._session = DedicatedSession(database)
        self._max_lag_rows = max_lag_rows
        self._observe_lag = observe_lag
        #: Committed batches not yet projected: id, rows, commit time.
        self._queue: deque[tuple[int, int, float]] = deque()
        self._queued_rows = 0
        self._work = asyncio.Event()
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failure: str | None = None
        #: The last batch the tables hold, as far as this projector knows.
        self.watermark = 0
        #: Told the watermark each time it moves (the exchange then forgets
        #: the orders those batches closed).
        self.projected: Callable[[int], None] | None = None
        self.stats = ProjectionStats()

    @property
    def lag_batches(self) -> int:
        """Committed batches not yet projected."""
        return len(self._queue)

    @property
    def lag_rows(self) -> int:
        """Rows of the committed batches not yet projected."""
        return self._queued_rows

    def start(self, projected: int) -> None:
        """Project from batch ``projected + 1`` on."""
        self.watermark = projected
        self._failure = None
        self._task = asyncio.create_task(self._run(), name="bourse-projector")

    def add(self, batch_id: int, rows: int) -> None:
        """Batch ``batch_id``, of ``rows`` rows, has committed to the journal:
        project it (starting from the batch before it if nothing said where
        to start), unless another projector already has."""
        if self._task is None:
            self.start(batch_id - 1)
        if batch_id <= self.watermark:
            return
        self._queue.append((batch_id, rows, time.monotonic()))
        self._queued_rows += rows
        self._work.set()

    async def wait_for_room(self) -> None:
        """Return once the unprojected batches are within the bound; raise
        ``ProjectionFailedError`` if the projection cannot go on."""
        while self._failure is None and self._queued_rows > self._max_lag_rows:
            self._progress.clear()
            await self._progress.wait()
        if self._failure is not None:
            raise ProjectionFailedError(self._failure)

    async def drain(self) -> None:
        """Wait until every batch handed over is projected (or the projection failed)."""
        while self._queue and self._failure is None and self._task is not None:
            self._progress.clear()
            await self._progress.wait()

    async def stop(self) -> None:
        """Stop projecting and forget what is queued (the journal keeps it)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._queue.clear()
        self._queued_rows = 0
        self._progress.set()
        await self._session.forget()

    async def close(self) -> None:
        """Stop, closing the session cleanly."""
        await self.stop()
        await self._session.close()

    async def _run(self) -> None:
        while True:
            await self._work.wait()
            self._work.clear()
            while self._queue and self._failure is None:
                if self._queued_rows < WINDOW_ROWS:
                    await asyncio.sleep(GATHER_SECONDS)
                await self._project_next()
                self._progress.set()

    async def _project_next(self) -> None:
        first, last = self._next_window()
        oldest = self._queue[0][2]
        try:
            session, _ = await self._session.open()
            await project(session, first, last)
        except ProjectionConflictError as conflict:
            await self._settle_conflict(conflict)
            return
        except Exception as exc:
            _reraise_cancellation(exc)
            log.warning("projecting batches %d-%d failed: %r", first, last, exc)
            await self._session.forget()
            await asyncio.sleep(RETRY_INTERVAL)
            return
        self.stats.windows += 1
        self._retire(last)
        if self._observe_lag is not None:
            self._observe_lag(time.monotonic() - oldest)

    def _next_window(self) -> tuple[int, int]:
        """The oldest queued batches, about ``WINDOW_ROWS`` rows of them:
        the first and the last."""
        first = last = self._queue[0][0]
        rows = 0
        for batch_id, batch_rows, _ in self._queue:
            last = batch_id
            rows += batch_rows
            if rows >= WINDOW_ROWS:
                break
        return first, last

    def _retire(self, last: int) -> None:
        """Batches up to ``last`` are in the tables."""
        while self._queue and self._queue[0][0] <= last:
            _, rows, _ = self._queue.popleft()
            self._queued_rows -= rows
            self.stats.rows += rows
            self.stats.batches += 1
        self.watermark = last
        if self.projected is not None:
            self.projected(last)

    async def _settle_conflict(self, conflict: ProjectionConflictError) -> None:
        """Batches another projector has written meanwhile (all of the window
        or its start: a restarting server catches up from the same journal)
        are dropped, and the projection goes on after them; anything else
        stops it until the exchange is rebuilt."""
        with contextlib.suppress(Exception):
            session, _ = await self._session.open()
            found = await watermark(session)
            if found > self.watermark:
                self._retire(found)
                return
        self._failure = f"{conflict} (projected up to batch {self.watermark} here)"
        log.error("projection stopped: %s", self._failure)


def _reraise_cancellation(error: Exception) -> None:
    """Raise ``CancelledError`` if this task is being cancelled: the driver
    reports a cancellation that closed the connection under a transaction as
    the closed connection's error, and ``stop`` must not wait for ever on a
    task that took it for a failed write and went on."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from error
