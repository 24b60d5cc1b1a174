"""Reading closed orders back from the tables, to answer queries of them.

The exchange keeps only orders that can still change; a ``<query>`` or
``<cancel>`` of any other order it issued is answered from the ``orders``
and ``executions`` rows (``core/lookup.py``). The server gathers such
lookups and reads all the orders they name at once: one read-only
transaction, two statements, by primary key and by ``executions_by_order``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bourse.core.lookup import StoredOrder
from bourse.core.results import Execution, FillHistory, OrderState
from bourse.store.session import pooled_session

_ORDERS = (
    "SELECT id, account_id, open_shares, canceled_shares, "
    "CAST(extract(epoch FROM canceled_at) AS bigint) "
    "FROM orders WHERE id = ANY($1::bigint[])"
)
_FILLS = (
    "SELECT order_id, shares, price, CAST(extract(epoch FROM executed_at) AS bigint) "
    "FROM executions WHERE order_id = ANY($1::bigint[]) ORDER BY order_id, id"
)


async def read_orders(database: AsyncEngine, order_ids: Collection[int]) -> dict[int, StoredOrder]:
    """The stored orders among ``order_ids``, with their fills oldest first."""
    async with (
        pooled_session(database) as session,
        session.transaction(isolation="repeatable_read", readonly=True),
    ):
        return await _read(session, list(order_ids))


async def _read(session: Any, order_ids: list[int]) -> dict[int, StoredOrder]:
    fills: dict[int, list[Execution]] = {order_id: [] for order_id in order_ids}
    for order_id, shares, price, time in await session.fetch(_FILLS, order_ids):
        fills[order_id].append(Execution(shares, price, time))
    return {
        order_id: StoredOrder(
            account_id,
            OrderState(order_id, open_shares, canceled, canceled_at, FillHistory(fills[order_id])),
        )
        for order_id, account_id, open_shares, canceled, canceled_at in await session.fetch(
            _ORDERS, order_ids
        )
    }
