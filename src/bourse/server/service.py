"""The exchange's request path: apply in arrival order, reply after commit.

Requests are applied to the in-memory exchange the moment they are read, in
arrival order, and join the batch that is filling. A committer task cuts
the batch (its replies and the exchange's changes, in one synchronous step),
writes it to PostgreSQL in one transaction, and only then releases its
replies; while one batch commits, the next one fills (group commit).

A batch is closed as soon as the request that makes it reach
``max_batch_rows`` changed rows has been applied, and closed batches wait
their turn in order: however large the burst, each commit writes a bounded
number of rows, so its duration stays bounded and a healthy commit is not
mistaken for a lost database. (A single request may write more than the
bound on its own; its batch is given proportionally more time.)

The exchange keeps only orders that can still change: once a batch is in
the tables (the projection's watermark reached it), the orders it closed
are evicted from memory, and a query or cancel of one is answered from the
tables by ``StoredLookups``, whose replies leave once read, still in
request order on their connection.

When a commit fails the exchange stops acknowledging at once. Replies of
the failed batch and of the batch filling behind it become errors when
COMMIT was never sent, and the connections of the failed batch are dropped
without a reply when the outcome is unknown. The exchange is then rebuilt
from the database, which is the truth either way; until that succeeds every
request is answered with a prompt error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bourse.core.changes import ChangeSet
from bourse.core.commands import Request, TransactionsRequest
from bourse.core.errors import ErrorCode
from bourse.core.exchange import Exchange
from bourse.core.lookup import StoredLookup
from bourse.core.market import Standing
from bourse.core.results import Error, Opened, Result
from bourse.server.commit_timing import BatchStats, within_listening_time
from bourse.server.limits import AccountLimits
from bourse.server.lookups import StoredLookups
from bourse.server.metrics import Metrics
from bourse.server.publisher import MarketPublisher
from bourse.server.storage import Storage
from bourse.server.tuning import tune_garbage_collector
from bourse.store.fence import FencedOutError, SessionId
from bourse.store.replication import Replication

log = logging.getLogger(__name__)

#: Seconds between attempts to reach the database while it is down (or
#: held by another bourse, or without the synchronous standby required).
RETRY_INTERVAL = 0.5

#: Seconds between two looks at the database's replication while serving,
#: and how long one look may take.
REPLICATION_POLL = 0.5
REPLICATION_TIMEOUT = 2.0


class NoSyncStandbyError(Exception):
    """A synchronous standby is required and none is streaming."""


class Pending(Protocol):
    """Where the outcome of one submitted request goes: a reply slot of a
    connection in this process, or a token of a gateway process."""

    def release(self, results: Sequence[Result]) -> None:
        """The request's effects are committed: answer with ``results``."""

    def refuse(self, code: ErrorCode) -> None:
        """The request had no effect: answer with this error."""

    def drop(self) -> None:
        """The outcome is unknown: close the connection without an answer."""


@dataclass(slots=True)
class _Batch:
    """Requests waiting for the commit of the changes they made, with the
    results to release then; ``changes`` is cut when the batch is closed."""

    replies: list[tuple[Pending, list[Result]]] = field(default_factory=list)
    changes: ChangeSet | None = None
    #: The leaderboard as of the cut, when one is due with this batch.
    standings: tuple[Standing, ...] | None = None
    #: Replies that wait for stored orders before they leave.
    lookups: int = 0


class _CommitError(Exception):
    """A batch did not commit for sure. ``in_doubt`` names the server session
    whose COMMIT was sent without an answer (None: nothing was committed)."""

    def __init__(self, in_doubt: SessionId | None) -> None:
        super().__init__("commit failed")
        self.in_doubt = in_doubt


class ExchangeService:
    """The engine, its store (any ``Storage``), and the batches between them."""

    def __init__(
        self,
        store: Storage,
        *,
        commit_timeout: float = 5.0,
        recovery_timeout: float = 300.0,
        account_limits: AccountLimits | None = None,
        max_open_orders: int | None = None,
        max_reply_fills: int | None = None,
        max_batch_rows: int = 50_000,
        require_sync_standby: bool = False,
        metrics: Metrics | None = None,
        publisher: MarketPublisher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = Metrics() if metrics is None else metrics
        self.publisher = MarketPublisher(leaderboard=False) if publisher is None else publisher
        self._counters = self.metrics.engine
        self._store = store
        self._commit_timeout = commit_timeout
        self._account_limits = account_limits
        self._max_open_orders = max_open_orders
        self._max_reply_fills = max_reply_fills
        self._max_batch_rows = max_batch_rows
        self._recovery_timeout = recovery_timeout
        self._require_sync_standby = require_sync_standby
        self._clock = clock
        self._exchange: Exchange | None = None
        #: The last batch whose replies were released, and the order id the
        #: exchange would have handed out next when it was last abandoned.
        self._acknowledged_batch = 0
        self._issued_order_ids = 1
        #: True while requests are refused for want of a synchronous standby.
        self._unprotected = False
        self._replication: Replication | None = None
        self._waiting_for = ""
        self._batch_id = 0
        self._filling = _Batch()
        self._closed: deque[_Batch] = deque()
        #: Committed batches not yet in the tables, with the orders they closed.
        self._closing: deque[tuple[int, list[int]]] = deque()
        self._lookups = StoredLookups(store.stored_orders, self._count_error, max_reply_fills)
        store.watch_projection(self._evict_projected)
        self.metrics.filling = lambda: len(self._filling.replies)
        self.metrics.orders_in_memory = self._orders_in_memory
        self._work = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats = BatchStats()

    async def start(self) -> None:
        """Become the database's one writer, bring the schema up to date and
        load the exchange. While another bourse writes to the database, or a
        required synchronous standby is missing, wait; fail on anything else."""
        while True:
            try:
                await self._load(migrate=True)
            except (FencedOutError, NoSyncStandbyError) as reason:
                self._note_waiting(reason)
            else:
                return
            await asyncio.sleep(RETRY_INTERVAL)

    # the request path (synchronous: runs between two awaits of the loop)

    def submit(self, request: Request, pending: Pending) -> None:
        """Apply one request; ``pending`` is resolved once its reply may leave."""
        exchange = self._exchange
        if exchange is None or self._unprotected:
            self._refuse(pending, ErrorCode.UNAVAILABLE)
            return
        limits = self._account_limits
        if (
            limits is not None
            and type(request) is TransactionsRequest
            and request.account_id in exchange.ledger.accounts
            and not limits.allow(request.account_id)
        ):
            self._refuse(pending, ErrorCode.RATE_LIMITED)
            return
        results = exchange.apply(request, int(self._clock()))
        if self._count(results):
            self._filling.lookups += 1
        self._filling.replies.append((pending, results))
        if exchange.journal.row_count() >= self._max_batch_rows:
            self._close_filling_batch(exchange)
        self._idle.clear()
        self._work.set()

    def _close_filling_batch(self, exchange: Exchange) -> None:
        """Cut the filling batch's changes; it waits its turn to commit."""
        batch, self._filling = self._filling, _Batch()
        batch.changes = exchange.take_changes()
        batch.standings = self.publisher.standings_due(exchange)
        self._closed.append(batch)

    def _refuse(self, pending: Pending, code: ErrorCode) -> None:
        counters = self._counters
        counters.refused += 1
        counters.errors[code.name] += 1
        pending.refuse(code)

    def _count(self, results: list[Result]) -> int:
        """Count what ``results`` did; how many of them wait for a stored
        order (counted once answered)."""
        counters = self._counters
        counters.applied += 1
        lookups = 0
        for result in results:
            if isinstance(result, Opened):
                counters.orders += 1
            elif type(result) is StoredLookup:
                lookups += 1
            elif isinstance(result, Error):
                counters.errors[result.code.name] += 1
        return lookups

    def _count_error(self, error: Error) -> None:
        self._counters.errors[error.code.name] += 1

    def _orders_in_memory(self) -> int:
        return 0 if self._exchange is None else len(self._exchange.orders)

    def _evict_projected(self, watermark: int) -> None:
        """The tables hold every batch up to ``watermark``: forget the orders
        those batches closed."""
        closing = self._closing
        while closing and closing[0][0] <= watermark:
            _, order_ids = closing.popleft()
            if self._exchange is not None:
                self._exchange.evict(order_ids)

    def committed_exchange(self) -> Exchange | None:
        """The exchange while everything applied to it is committed (no
        batch filling or in flight), else None."""
        return self._exchange if self._idle.is_set() else None

    @property
    def ready(self) -> bool:
        """True while the exchange is loaded and accepting requests."""
        return self._exchange is not None

    # the committer

    async def run(self) -> None:
        """Commit batches one after another, forever."""
        while True:
            await self._work.wait()
            self._work.clear()
            try:
                while self._exchange is not None and self._has_work:
                    await self._commit_next_batch(self._exchange)
            except _CommitError as failure:
                await self._recover_from(failure)
            if not self._has_work:
                self._idle.set()

    @property
    def _has_work(self) -> bool:
        """True while applied requests wait for a commit."""
        return bool(self._closed or self._filling.replies)

    def halt(self) -> None:
        """Stop for good after a bug: nothing applied since the last cut is
        committed (it may hold half a request); its clients get errors."""
        self._abandon(_Batch(), outcome_known=True)

    async def drain(self) -> None:
        """Wait until every applied request has been committed and answered."""
        await self._idle.wait()

    async def _commit_next_batch(self, exchange: Exchange) -> None:
        if not self._closed:
            self._close_filling_batch(exchange)
        batch = self._closed.popleft()
        changes = batch.changes
        assert changes is not None
        if not changes.is_empty():
            self._batch_id += 1
            in_doubt: list[SessionId] = []
            try:
                await self._store.wait_for_room()
                started = time.perf_counter()
                await within_listening_time(
                    self._store.write(self._batch_id, len(batch.replies), changes, in_doubt.append),
                    self._commit_deadline(changes),
                )
            except Exception as exc:
                log.error("batch %d failed to commit: %r", self._batch_id, exc)
                self._abandon(batch, outcome_known=not in_doubt)
                raise _CommitError(in_doubt[0] if in_doubt else None) from exc
            seconds = time.perf_counter() - started
            self.stats.record(len(batch.replies), seconds)
            self.metrics.batch_requests.observe(len(batch.replies))
            self.metrics.commit_seconds.observe(seconds)
            self._counters.fills += len(changes.executions) // 2
            self._acknowledged_batch = self._batch_id
            self._note_closed(self._batch_id, changes)
        self._release(batch)
        self.publisher.committed(changes.market, batch.standings)

    def _note_closed(self, batch_id: int, changes: ChangeSet) -> None:
        """Remember the orders batch ``batch_id`` closed, to evict them once
        it is in the tables."""
        closed = [row.order_id for row in changes.orders if not row.open_shares]
        if closed:
            self._closing.append((batch_id, closed))

    def _release(self, batch: _Batch) -> None:
        """Release the batch's replies; those naming stored orders once read."""
        if not batch.lookups:
            for pending, results in batch.replies:
                pending.release(results)
            return
        for pending, results in batch.replies:
            if any(type(result) is StoredLookup for result in results):
                self._lookups.submit(pending, results)
            else:
                pending.release(results)

    def _commit_deadline(self, changes: ChangeSet) -> float:
        """Seconds ``changes`` may take to commit: the commit timeout, times
        how many full batches a request larger than a batch wrote alone."""
        return self._commit_timeout * max(1, math.ceil(changes.row_count() / self._max_batch_rows))

    def _abandon(self, batch: _Batch, *, outcome_known: bool) -> None:
        """Stop acknowledging: resolve every uncommitted reply without success."""
        if self._exchange is not None:
            self._issued_order_ids = self._exchange.next_order_id
        self._exchange = None
        self._closing.clear()
        for pending, _ in batch.replies:
            if outcome_known:
                self._refuse(pending, ErrorCode.UNAVAILABLE)
            else:
                pending.drop()
        behind = [*self._closed, self._filling]
        self._closed.clear()
        self._filling = _Batch()
        for waiting in behind:
            for pending, _ in waiting.replies:
                self._refuse(pending, ErrorCode.UNAVAILABLE)

    async def _recover_from(self, failure: _CommitError) -> None:
        """Rebuild from the database, attempt after attempt, until it works.

        Each step (forget the connections, revive the embedded server,
        end the session in doubt, load: claim the writer's lock, read the
        replication, read the exchange) has ``recovery_timeout`` seconds:
        a step that hangs is cancelled and the attempt made again, never
        awaited for ever. Meanwhile every request gets a prompt error.
        """
        log.warning(
            "exchange unavailable (%s); rebuilding from the database",
            "outcome known" if failure.in_doubt is None else "outcome in doubt",
        )
        timeout = self._recovery_timeout
        while True:
            try:
                await asyncio.wait_for(self._store.reset_connections(), timeout)
                await asyncio.wait_for(self._store.revive(), timeout)
                if failure.in_doubt is not None:
                    await asyncio.wait_for(self._store.end_session(failure.in_doubt), timeout)
                await asyncio.wait_for(self._load(), timeout)
            except TimeoutError:
                log.warning("a recovery step timed out; trying again")
            except (FencedOutError, NoSyncStandbyError) as reason:
                self._note_waiting(reason)
            except Exception as exc:
                log.warning("database not reachable yet: %r", exc)
            else:
                log.info("exchange rebuilt from the database; serving again")
                return
            await asyncio.sleep(RETRY_INTERVAL)

    async def _load(self, *, migrate: bool = False) -> None:
        """Claim the database, check its replication, load the exchange."""
        await self._store.claim()
        if migrate:
            await self._store.migrate()
        await self._check_replication()
        exchange, last_batch_id = await self._store.load_exchange()
        if last_batch_id < self._acknowledged_batch:
            self._say_lost(last_batch_id)
            exchange.never_reissue_below(self._issued_order_ids)
        exchange.max_open_orders = self._max_open_orders
        exchange.max_reply_fills = self._max_reply_fills
        self._batch_id = last_batch_id
        self._closing.clear()
        tune_garbage_collector()
        self.publisher.loaded(exchange)
        self._exchange = exchange
        self._waiting_for = ""

    def _say_lost(self, last_batch_id: int) -> None:
        """The database lacks batches whose replies were released: a failover
        to a standby that had not received them (asynchronous replication).
        Say so; their order ids are not handed out again."""
        log.error(
            "acknowledged batches %d to %d are not in the database (a failover to a standby "
            "that lacked them: synchronous_standby_names was empty?); the exchange goes on "
            "from batch %d, and order ids below %d are not handed out again",
            last_batch_id + 1,
            self._acknowledged_batch,
            last_batch_id,
            self._issued_order_ids,
        )
        self._acknowledged_batch = last_batch_id

    def _note_waiting(self, reason: Exception) -> None:
        """Say why the exchange waits, once per reason."""
        if str(reason) != self._waiting_for:
            self._waiting_for = str(reason)
            log.warning("standing by: %s", reason)

    # replication

    async def _check_replication(self) -> None:
        """Say what the replication is when it changes; raise ``NoSyncStandbyError``
        if a synchronous standby is required and none streams."""
        replication = await self._store.replication()
        if replication != self._replication:
            self._replication = replication
            log.log(*replication.describe())
        self._unprotected = self._require_sync_standby and not replication.synchronous
        if self._unprotected:
            raise NoSyncStandbyError(
                "--require-sync-standby is set and no synchronous standby streams"
            )

    async def watch_replication(self) -> None:
        """Look at the replication every ``REPLICATION_POLL`` seconds while
        serving: say when it changes, and refuse requests while a required
        synchronous standby is missing. (An outage is the committer's to find.)"""
        while True:
            await asyncio.sleep(REPLICATION_POLL)
            if self._exchange is None:
                continue
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._check_replication(), REPLICATION_TIMEOUT)
