"""What the exchange service needs from its system of record, and no more.

``ExchangeService`` decides when a batch is released, refused or dropped
and how the exchange is rebuilt; the store (``bourse.store.store.Store``,
PostgreSQL) only carries those decisions out. Typing the service against
this protocol keeps the two apart: the service's decisions can be tested
with an in-memory store, without PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Protocol

from bourse.core.changes import ChangeSet
from bourse.core.exchange import Exchange
from bourse.core.lookup import StoredOrder
from bourse.store.fence import SessionId
from bourse.store.replication import Replication


class Storage(Protocol):
    """The exchange's system of record, as the service uses it."""

    async def claim(self) -> None:
        """Become the database's one writer, or raise ``FencedOutError``
        (``bourse.store.fence``) naming the bourse that is."""

    async def replication(self) -> Replication:
        """The primary's replication, as it stands now."""

    async def migrate(self) -> None:
        """Bring the schema up to date."""

    async def load_exchange(self) -> tuple[Exchange, int]:
        """A fresh exchange holding the live state committed (no closed
        orders), and the last batch id."""

    async def stored_orders(self, order_ids: Collection[int]) -> dict[int, StoredOrder]:
        """The stored orders among ``order_ids`` (the closed orders the
        exchange no longer holds are all stored); raising means the
        database could not be read."""

    def watch_projection(self, projected: Callable[[int], None]) -> None:
        """Have ``projected`` called with the last batch the tables hold
        each time that moves."""

    async def write(
        self,
        batch_id: int,
        requests: int,
        changes: ChangeSet,
        statement_sent: Callable[[SessionId], None],
    ) -> None:
        """Commit ``changes`` as batch ``batch_id`` of ``requests`` requests.

        ``statement_sent`` is called with the database session the
        moment the write can no longer be called off: an exception raised
        before that call means nothing was written; after it, the outcome
        is in doubt until that session has ended (``end_session``).
        """

    async def wait_for_room(self) -> None:
        """Return once another batch may be committed: the work still
        trailing the commits (the projection of the tables) is within its
        bound. Raising means the exchange must be rebuilt; nothing was written."""

    async def reset_connections(self) -> None:
        """Forget every connection (after a failure left them in doubt)."""

    async def revive(self) -> None:
        """Bring the database back if this store knows how (else nothing)."""

    async def end_session(self, session: SessionId) -> None:
        """Make sure ``session``, whose commit is in doubt, has ended, so
        that what is loaded next holds its outcome."""
