"""The gateway link's compact form of a market update loses nothing."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from bourse.bench.workload import WorkloadShape, setup_request, transaction_stream
from bourse.core.exchange import Exchange
from bourse.core.market import MarketUpdate
from bourse.server.market_codec import pack_update, unpack_update


def updates_of_a_stream(requests: int, per_batch: int) -> list[MarketUpdate]:
    """The market updates of a seeded stream, cut every ``per_batch`` requests."""
    shape = WorkloadShape()
    exchange = Exchange()
    exchange.apply(setup_request(shape), 1)
    updates = [exchange.take_changes().market]
    stream = list(transaction_stream(replace(shape, requests=requests), seed=5))
    for start in range(0, len(stream), per_batch):
        for offset, request in enumerate(stream[start : start + per_batch]):
            exchange.apply(request, 2 + start + offset)
        updates.append(replace(exchange.take_changes().market, committed=1700000000.5))
    return updates


def test_every_update_of_a_stream_comes_back_equal() -> None:
    updates = updates_of_a_stream(2000, 10)
    assert sum(len(u.messages) for u in updates) > 100
    assert sum(len(u.orders) for u in updates) > 100
    assert [unpack_update(pack_update(update)) for update in updates] == updates


def test_decimals_keep_their_exact_value() -> None:
    (update,) = [u for u in updates_of_a_stream(200, 200) if u.messages][:1]
    back = unpack_update(pack_update(update))
    prices = [m.changes[0].price for m in back.messages if hasattr(m, "changes")]
    assert all(isinstance(price, Decimal) for price in prices)
    assert [str(p) for p in prices] == [
        str(m.changes[0].price) for m in update.messages if hasattr(m, "changes")
    ]
