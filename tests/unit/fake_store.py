"""An in-memory system of record, for testing the exchange service's decisions.

It keeps what committed batches wrote as rows merged by key, as the tables
do (accounts, positions and orders updated in place, executions and
deposits appended), and loads them back through ``restore_exchange`` as the
real store does: after a failure the service rebuilds from what was
committed, and from nothing else. What each write does is scripted
(commit, fail before sending, commit but lose the answer, never answer);
while ``down`` the database cannot be reached at all.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from enum import Enum, auto

from bourse.core.changes import (
    AccountRow,
    ChangeSet,
    DepositRow,
    ExecutionRow,
    OrderRow,
    PositionRow,
    SequenceRow,
)
from bourse.core.exchange import Exchange
from bourse.core.lookup import StoredOrder
from bourse.core.restore import restore_exchange
from bourse.core.results import FillHistory, OrderState
from bourse.store.fence import FencedOutError, SessionId
from bourse.store.replication import Replication

#: The database session a write reports when its statement is sent.
SESSION = SessionId(4242, datetime(2026, 1, 2, tzinfo=UTC))
SESSION_PID = SESSION.pid

#: A primary with one synchronous standby streaming.
SYNCHRONOUS = Replication("*", "on", (("standby1", "sync"),))
#: A primary without standbys.
UNREPLICATED = Replication("", "on", ())


#: The attributes that hold what committed batches wrote.
_COMMITTED = (
    "_symbols",
    "_accounts",
    "_positions",
    "_orders",
    "_executions",
    "_deposits",
    "_sequences",
    "_last_batch_id",
    "batches",
)


class Write(Enum):
    """What one write does."""

    COMMIT = auto()
    #: Fails before the statement is sent: nothing was written.
    FAIL_BEFORE_SENDING = auto()
    #: Sent and committed, but the answer is lost (the connection drops).
    ANSWER_LOST = auto()
    #: Sent, and no answer ever comes; nothing is committed.
    NEVER_ANSWERS = auto()


class FakeStore:
    """A ``Storage`` in memory; ``calls`` records what the service asked."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        #: ``(batch id, requests, rows)`` of each committed batch, in order.
        self.batches: list[tuple[int, int, int]] = []
        #: What the next writes do (``Write.COMMIT`` once empty).
        self.writes: deque[Write] = deque()
        #: When given, every write waits until it is set before going on.
        self.hold: asyncio.Event | None = None
        #: Seconds each sent statement takes to answer.
        self.write_seconds = 0.0
        self.down = False
        #: Loads still to fail (database unreachable) before one succeeds.
        self.failing_loads = 0
        #: Loads still to hang for ever before one succeeds.
        self.hanging_loads = 0
        #: Who holds the writer's lock, when another bourse does.
        self.held_by: str | None = None
        #: What ``replication`` reports.
        self.replicated = UNREPLICATED
        self._symbols: list[str] = []
        self._accounts: dict[str, AccountRow] = {}
        self._positions: dict[tuple[str, str], PositionRow] = {}
        self._orders: dict[int, OrderRow] = {}
        self._executions: list[ExecutionRow] = []
        self._deposits: list[DepositRow] = []
        self._sequences: dict[str, SequenceRow] = {}
        self._last_batch_id = 0
        self._projected: Callable[[int], None] | None = None
        #: Order ids each ``stored_orders`` call asked for.
        self.order_reads: list[list[int]] = []
        #: When given, every read of stored orders waits until it is set.
        self.hold_reads: asyncio.Event | None = None

    def standby(self) -> dict[str, object]:
        """A copy of everything committed so far: what a standby holds."""
        return copy.deepcopy({name: getattr(self, name) for name in _COMMITTED})

    def fail_over_to(self, standby: dict[str, object]) -> None:
        """Become the standby copied earlier: the batches committed since
        are lost, as after a failover with asynchronous replication."""
        for name, value in standby.items():
            setattr(self, name, value)

    def calls_after(self, call: str) -> list[str]:
        """The calls made after the first ``call``."""
        return self.calls[self.calls.index(call) + 1 :]

    def _reach(self) -> None:
        if self.down:
            raise ConnectionRefusedError("the database is down")

    # An outage shows in loads and writes; the lock and the replication
    # are scripted on their own.

    async def claim(self) -> None:
        if self.held_by is not None:
            raise FencedOutError(self.held_by)

    async def replication(self) -> Replication:
        return self.replicated

    async def migrate(self) -> None:
        self.calls.append("migrate")
        self._reach()

    async def load_exchange(self) -> tuple[Exchange, int]:
        self.calls.append("load")
        self._reach()
        if self.failing_loads:
            self.failing_loads -= 1
            raise ConnectionRefusedError("the database is starting")
        if self.hanging_loads:
            self.hanging_loads -= 1
            await asyncio.Event().wait()
        return restore_exchange(self.stored()), self._last_batch_id

    def stored(self) -> ChangeSet:
        """Every committed row, as the change set that builds the exchange."""
        return ChangeSet(
            symbols=list(self._symbols),
            accounts=list(self._accounts.values()),
            positions=list(self._positions.values()),
            orders=[self._orders[order_id] for order_id in sorted(self._orders)],
            executions=list(self._executions),
            deposits=list(self._deposits),
            sequences=list(self._sequences.values()),
        )

    async def write(
        self,
        batch_id: int,
        requests: int,
        changes: ChangeSet,
        statement_sent: Callable[[SessionId], None],
    ) -> None:
        self.calls.append(f"write {batch_id}")
        if self.hold is not None:
            await self.hold.wait()
        self._reach()
        outcome = self.writes.popleft() if self.writes else Write.COMMIT
        if outcome is Write.FAIL_BEFORE_SENDING:
            raise ConnectionRefusedError("no connection")
        statement_sent(SESSION)
        await asyncio.sleep(self.write_seconds)
        if outcome is Write.NEVER_ANSWERS:
            await asyncio.Event().wait()
        self._commit(batch_id, requests, changes)
        if outcome is Write.ANSWER_LOST:
            raise ConnectionResetError("the connection dropped before the answer")

    def _commit(self, batch_id: int, requests: int, changes: ChangeSet) -> None:
        self._symbols.extend(changes.symbols)
        self._accounts.update((row.account_id, row) for row in changes.accounts)
        self._positions.update(((row.account_id, row.symbol), row) for row in changes.positions)
        self._orders.update((row.order_id, row) for row in changes.orders)
        self._executions.extend(changes.executions)
        self._deposits.extend(changes.deposits)
        self._sequences.update((row.symbol, row) for row in changes.sequences)
        self._last_batch_id = batch_id
        self.batches.append((batch_id, requests, changes.row_count()))

    async def stored_orders(self, order_ids: Collection[int]) -> dict[int, StoredOrder]:
        self.order_reads.append(sorted(order_ids))
        if self.hold_reads is not None:
            await self.hold_reads.wait()
        self._reach()
        return {
            order_id: self._stored_order(self._orders[order_id])
            for order_id in order_ids
            if order_id in self._orders
        }

    def _stored_order(self, row: OrderRow) -> StoredOrder:
        fills = [e.execution for e in self._executions if e.order_id == row.order_id]
        state = OrderState(
            row.order_id, row.open_shares, row.canceled_shares, row.canceled_at, FillHistory(fills)
        )
        return StoredOrder(row.account_id, state)

    def watch_projection(self, projected: Callable[[int], None]) -> None:
        self._projected = projected

    def project(self) -> None:
        """The projection has caught up with every committed batch."""
        if self._projected is not None:
            self._projected(self._last_batch_id)

    async def wait_for_room(self) -> None:
        """Nothing trails the commits here: there is always room."""

    async def reset_connections(self) -> None:
        self.calls.append("reset")

    async def revive(self) -> None:
        self.calls.append("revive")

    async def end_session(self, session: SessionId) -> None:
        self.calls.append(f"end_session {session.pid}")
        self._reach()
