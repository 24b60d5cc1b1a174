"""Answering queries and cancels of stored orders, off the exchange's loop.

A request naming an order the exchange no longer holds comes back from it
with a ``StoredLookup`` in that command's place (``core/lookup.py``). Its
reply is not released with its batch but handed here: a task of its own
reads every order the waiting replies name in one go (so one database read
answers all the lookups that gathered meanwhile), puts the answers in
place and releases the replies. A connection releases replies only in
request order, so the requests behind one that waits here wait with it,
and the others do not.

A request's reply keeps within ``max_reply_fills`` fills. The exchange has
already answered the orders it holds (a cancel among them is carried out
and cannot be taken back), so the looked-up orders take what their fills
leave of the budget, in request order: one whose fills would take the
request past the budget is answered "reply too large" instead, unless
nothing else in the request reports any fills.

If the database cannot be read, the read is tried ``ATTEMPTS`` times,
``RETRY_INTERVAL`` seconds apart; then each lookup is answered with the
error the server gives when its database cannot be reached.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Protocol

from bourse.core.errors import ErrorCode
from bourse.core.lookup import StoredLookup, StoredOrder, answer, unavailable
from bourse.core.results import Error, OrderReport, Result

log = logging.getLogger(__name__)

ATTEMPTS = 3
RETRY_INTERVAL = 0.2
#: Seconds one read may take before it counts as failed.
READ_TIMEOUT = 2.0

ReadOrders = Callable[[Collection[int]], Awaitable[dict[int, StoredOrder]]]


class Releasable(Protocol):
    """Where one request's results go once they are all answered."""

    def release(self, results: Sequence[Result]) -> None:
        """Answer with ``results``."""


class StoredLookups:
    """Replies waiting for stored orders, answered in gathered reads."""

    def __init__(
        self,
        read_orders: ReadOrders,
        count_error: Callable[[Error], None],
        max_reply_fills: int | None = None,
    ) -> None:
        self._read_orders = read_orders
        self._count_error = count_error
        self._max_reply_fills = max_reply_fills
        self._waiting: list[tuple[Releasable, list[Result]]] = []
        self._work = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def submit(self, pending: Releasable, results: list[Result]) -> None:
        """Release ``results`` to ``pending`` once its lookups are answered."""
        self._waiting.append((pending, results))
        self._work.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="bourse-stored-lookups")

    async def _run(self) -> None:
        while True:
            await self._work.wait()
            self._work.clear()
            waiting, self._waiting = self._waiting, []
            await self._answer(waiting)

    async def _answer(self, waiting: list[tuple[Releasable, list[Result]]]) -> None:
        order_ids = {
            result.command.order_id
            for _, results in waiting
            for result in results
            if type(result) is StoredLookup
        }
        stored = await self._read(order_ids)
        for pending, results in waiting:
            pending.release(self._answered(results, stored))

    def _answered(
        self, results: list[Result], stored: dict[int, StoredOrder] | None
    ) -> list[Result]:
        """``results`` with each lookup answered, within the fills budget."""
        answered: list[Result] = []
        reported = sum(_fills(result) for result in results)
        for result in results:
            if type(result) is StoredLookup:
                answered.append(self._answer_one(result, stored, reported))
                reported += _fills(answered[-1])
            else:
                answered.append(result)
        return answered

    def _answer_one(
        self, lookup: StoredLookup, stored: dict[int, StoredOrder] | None, reported: int
    ) -> Result:
        """The answer to ``lookup`` in a request that already reports
        ``reported`` fills; errors are counted."""
        result = unavailable(lookup) if stored is None else answer(lookup, stored)
        budget = self._max_reply_fills
        if budget is not None and reported and reported + _fills(result) > budget:
            result = Error(ErrorCode.REPLY_TOO_LARGE, lookup.command.echo)
        if isinstance(result, Error):
            self._count_error(result)
        return result

    async def _read(self, order_ids: Collection[int]) -> dict[int, StoredOrder] | None:
        """The stored orders, or None if the database could not be read."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await asyncio.wait_for(self._read_orders(order_ids), READ_TIMEOUT)
            except Exception as exc:
                log.warning("reading stored orders failed (attempt %d): %r", attempt, exc)
            if attempt < ATTEMPTS:
                await asyncio.sleep(RETRY_INTERVAL)
        return None


def _fills(result: Result) -> int:
    """How many ``<executed>`` the reply holds for ``result``."""
    return len(result.state.executions) if isinstance(result, OrderReport) else 0
