"""How long a batch's commit may take, and what committed batches took.

A commit is timed on the time this process could have heard its answer
(``within_listening_time``), so that a long stretch of the server's own
work is never mistaken for a slow database; ``BatchStats`` keeps the
figures the server logs every ``--stats-interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


class BatchStats:
    """Running figures of committed batches, reset when reported."""

    __slots__ = ("batches", "commit_seconds", "largest", "requests", "slowest_commit")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.batches = self.requests = self.largest = 0
        self.commit_seconds = self.slowest_commit = 0.0

    def record(self, requests: int, seconds: float) -> None:
        """Count one committed batch of ``requests`` that took ``seconds``."""
        self.batches += 1
        self.requests += requests
        self.largest = max(self.largest, requests)
        self.commit_seconds += seconds
        self.slowest_commit = max(self.slowest_commit, seconds)

    def report(self) -> str | None:
        """A one-line summary since the last report, or None if idle; resets."""
        if not self.batches:
            return None
        line = (
            f"{self.batches} batches, {self.requests / self.batches:.1f} requests per batch "
            f"(max {self.largest}), commit {1000 * self.commit_seconds / self.batches:.2f} ms "
            f"mean, {1000 * self.slowest_commit:.2f} ms max"
        )
        self._reset()
        return line


#: Seconds between two checks of a commit's deadline.
DEADLINE_TICK = 0.1


async def within_listening_time(work: Coroutine[Any, Any, None], seconds: float) -> None:
    """Run ``work``; cancel it and raise ``TimeoutError`` once it has taken
    ``seconds`` of time in which this process could have heard its answer.

    Applying a large request holds the event loop for as long as it takes,
    and an answer that arrives meanwhile is read only afterwards: that time
    is the server's own, not the database's, so it does not count. The
    deadline is checked every ``DEADLINE_TICK`` and a check that comes late
    is credited only the tick, so work that never answers is still cancelled
    however busy the loop is.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    waited = 0.0
    try:
        while waited < seconds:
            started = loop.time()
            await asyncio.wait({task}, timeout=DEADLINE_TICK)
            if task.done():
                task.result()
                return
            waited += min(loop.time() - started, DEADLINE_TICK)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    raise TimeoutError
