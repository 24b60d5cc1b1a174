"""Closed orders leave the engine once projected; queries of them still answer.

On the in-memory store: an order closed by a fill or a cancel stays in the
engine until the batch that closed it is in the tables, then goes; a query
or cancel of it is answered from the stored orders with the very reply
the engine gave from memory (another account's order and an unknown id
alike: "does not exist"), one read for the lookups gathered meanwhile; a
reply waiting for a read holds back the replies behind it on its
connection; and an unreachable database answers the lookup with the
error the server gives when its database cannot be reached.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bourse.core.commands import Request
from bourse.core.errors import ErrorCode
from bourse.core.results import Error, Result
from bourse.protocol.render import render_results
from bourse.protocol.session import ApplyRequest, Session
from bourse.server import lookups as lookups_module
from bourse.server.service import ExchangeService
from tests.builders import account, cancel, create, order, query, shares, transactions
from tests.unit.fake_store import FakeStore
from tests.unit.test_service import Outcome, run, serving, submit, wait_until

#: Buyer "1" and seller "2" fill each other (orders 1 and 2, both closed);
#: "1" places order 3 and cancels it; order 4 of "2" stays open.
HISTORY: list[Request] = [
    create(account("1", "1000"), account("2", "0"), shares("X", "2", "50")),
    transactions("1", order("X", "5", "10")),
    transactions("2", order("X", "-5", "9")),
    transactions("1", order("X", "2", "3")),
    transactions("1", cancel(3)),
    transactions("2", order("X", "-1", "20")),
]

#: Every kind of question about those orders, each in a request of its own.
QUESTIONS: list[Request] = [
    transactions("1", query(1)),
    transactions("2", query(2)),
    transactions("1", query(3)),
    transactions("1", cancel(1)),
    transactions("2", query(1)),  # another account's order
    transactions("2", cancel(3)),  # another account's order
    transactions("1", query(99)),  # never issued
    transactions("1", query(2), query(3), cancel(2)),  # several in one request
]


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads tried again 10 ms apart instead of 0.2 s: the same decisions, sooner."""
    monkeypatch.setattr(lookups_module, "RETRY_INTERVAL", 0.01)


async def settle(service: ExchangeService, requests: list[Request]) -> list[object]:
    outcomes = [submit(service, request) for request in requests]
    await wait_until(lambda: all(outcome.settled for outcome in outcomes))
    return [outcome.settled for outcome in outcomes]


@asynccontextmanager
async def evicted(
    store: FakeStore, service: ExchangeService, history: list[Request] = HISTORY
) -> AsyncIterator[None]:
    """``service`` serving, with ``history`` committed and projected: the
    orders it closed are gone from memory."""
    async with serving(service):
        await settle(service, history)
        store.project()
        yield


def rendered(settled: list[object]) -> list[bytes]:
    return [render_results(results[0]) for results in settled]  # type: ignore[index]


def test_closed_orders_leave_memory_once_their_batch_is_projected() -> None:
    async def scenario() -> None:
        store = FakeStore()
        service = ExchangeService(store)
        async with serving(service):
            await settle(service, HISTORY)
            assert service.metrics.orders_in_memory() == 4
            store.project()
            assert service.metrics.orders_in_memory() == 1
            exchange = service.committed_exchange()
            assert exchange is not None
            assert list(exchange.orders) == [4]

    run(scenario)


def test_orders_closed_in_batches_not_yet_projected_stay() -> None:
    async def scenario() -> None:
        store = FakeStore()
        service = ExchangeService(store)
        async with serving(service):
            await settle(service, HISTORY[:3])
            store.project()
            await settle(service, HISTORY[3:5])
            assert service.metrics.orders_in_memory() == 1, "order 3, closed, not projected"
            store.project()
            assert service.metrics.orders_in_memory() == 0

    run(scenario)


def test_the_tables_answer_as_memory_did() -> None:
    async def scenario() -> None:
        store = FakeStore()
        service = ExchangeService(store)
        async with serving(service):
            await settle(service, HISTORY)
            from_memory = rendered(await settle(service, QUESTIONS))
            assert store.order_reads == []
            store.project()
            from_tables = rendered(await settle(service, QUESTIONS))
            assert store.order_reads, "the evicted orders were read from the store"
        assert from_tables == from_memory
        assert b"Order does not exist" in from_tables[4]
        assert b"no open shares" in from_tables[3]
        assert b'<executed shares="5" price="10"' in from_tables[0]

    run(scenario)


def test_lookups_gathered_meanwhile_are_read_at_once() -> None:
    async def scenario() -> None:
        store = FakeStore()
        store.hold_reads = asyncio.Event()
        service = ExchangeService(store)
        async with evicted(store, service):
            first = submit(service, transactions("1", query(1)))
            await wait_until(lambda: store.order_reads)
            later = [submit(service, question) for question in QUESTIONS]
            await asyncio.sleep(0.05)
            store.hold_reads.set()
            await wait_until(lambda: all(o.settled for o in [first, *later]))
        assert store.order_reads == [[1], [1, 2, 3]], "99 was never issued: not read"

    run(scenario)


def test_a_reply_waiting_for_a_read_holds_back_its_connection() -> None:
    async def scenario() -> None:
        store = FakeStore()
        store.hold_reads = asyncio.Event()
        service = ExchangeService(store)
        session = Session()
        other = Outcome()
        async with evicted(store, service):
            session.receive_data(
                b'<transactions id="1"><query id="1"/></transactions>'
                b'<create><account id="3" balance="1"/></create>'
            )
            for _ in range(2):
                event = session.next_event()
                assert isinstance(event, ApplyRequest)
                service.submit(event.request, event.reply)
            service.submit(transactions("2", query(4)), other)
            await wait_until(lambda: other.settled)
            await service.drain()
            assert session.data_to_send() == b"", "the create waits behind the query"
            store.hold_reads.set()
            await wait_until(lambda: _take_replies(session, sent))
        assert sent.index(b"<status") < sent.index(b'<created id="3"/>')

    sent = bytearray()
    run(scenario)


def _take_replies(session: Session, sent: bytearray) -> bool:
    """Move what ``session`` has to send into ``sent``; True once both left."""
    while data := session.data_to_send():
        sent.extend(data)
    return b'<created id="3"/>' in sent


def test_an_unreachable_database_answers_the_lookup_unavailable() -> None:
    async def scenario() -> None:
        store = FakeStore()
        service = ExchangeService(store)
        async with evicted(store, service):
            store.down = True
            settled = await settle(service, [transactions("2", query(1), query(4))])
        results: list[Result] = settled[0][0]  # type: ignore[index]
        assert results[0] == Error(ErrorCode.UNAVAILABLE, query(1).echo)
        assert type(results[1]).__name__ == "Status", "the order in memory is answered"
        assert len(store.order_reads) == lookups_module.ATTEMPTS
        assert service.metrics.engine.errors["UNAVAILABLE"] == 1

    run(scenario)


def test_a_request_answered_from_the_tables_keeps_within_its_fills_budget() -> None:
    """With one fill per request, a second report of order 1 (one fill) in
    the same request is "reply too large", from memory and from the tables."""
    twice = transactions("1", query(1), query(1))

    async def scenario() -> None:
        store = FakeStore()
        service = ExchangeService(store, max_reply_fills=1)
        async with serving(service):
            await settle(service, HISTORY)
            from_memory = rendered(await settle(service, [twice]))
            store.project()
            from_tables = rendered(await settle(service, [twice]))
            assert store.order_reads == [[1]]
        assert from_tables == from_memory
        assert b"Reply too large" in from_tables[0]

    run(scenario)


def test_orders_from_the_tables_take_what_the_engine_left_of_the_budget() -> None:
    """With one fill per request, a request naming evicted order 1 (one
    fill) and open order 5 (one fill, still in memory) reports one of them:
    the engine has already answered order 5 (and carried out its cancel),
    so order 1 is "reply too large", wherever it stands in the request."""
    partly_filled: list[Request] = [
        transactions("1", order("X", "3", "20")),  # order 5, fills order 4
    ]
    mixed: list[Request] = [
        transactions("1", query(1), query(5)),
        transactions("1", query(5), query(1)),
        transactions("1", query(1), cancel(5)),
    ]

    async def scenario() -> list[bytes]:
        store = FakeStore()
        service = ExchangeService(store, max_reply_fills=1)
        async with evicted(store, service, HISTORY + partly_filled):
            assert service.metrics.orders_in_memory() == 1, "order 5 is open"
            return rendered(await settle(service, mixed))

    for reply in asyncio.run(scenario()):
        assert reply.count(b"<executed") == 1
        assert reply.count(b"Reply too large") == 1
        assert b'<error id="1">Reply too large' in reply
