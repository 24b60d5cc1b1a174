"""``bourse bench``: durable orders per second over TCP, closed loop.

Accounts and symbols are created first (untimed); then C clients each send
their share of a seeded, crossing order stream, one request at a time, on
persistent connections or one connection per request. The figures are
orders per second (orders acknowledged over wall time) and request latency
percentiles; every reply is checked to be a well-formed ``<results>`` with
one answer per order.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bourse.bench.load import LoadResult, run_load, send_all
from bourse.bench.workload import WorkloadShape, setup_request, transaction_stream
from bourse.bench.xml import create_xml, frame, transactions_xml


@dataclass(frozen=True, slots=True)
class BenchSettings:
    """What to run."""

    host: str = "127.0.0.1"
    port: int = 12345
    clients: int = 32
    requests_per_client: int = 200
    orders_per_request: int = 1
    persistent: bool = True
    accounts: int = 1000
    symbols: int = 10
    seed: int = 1


@dataclass(frozen=True, slots=True)
class BenchOutcome:
    """What a run measured."""

    settings: BenchSettings
    orders: int
    seconds: float
    orders_per_second: float
    p50_ms: float
    p99_ms: float
    malformed_replies: int


def _shape(settings: BenchSettings) -> WorkloadShape:
    return WorkloadShape(
        accounts=settings.accounts,
        symbols=settings.symbols,
        requests=settings.clients * settings.requests_per_client,
        orders_per_request=settings.orders_per_request,
        query_share=0.0,
        cancel_share=0.0,
    )


def _client_streams(settings: BenchSettings) -> list[list[bytes]]:
    stream = transaction_stream(_shape(settings), settings.seed)
    streams: list[list[bytes]] = [[] for _ in range(settings.clients)]
    for index, request in enumerate(stream):
        streams[index % settings.clients].append(frame(transactions_xml(request)))
    return streams


def _malformed(result: LoadResult, orders_per_request: int) -> int:
    return sum(
        1
        for reply in result.replies
        if not reply.rstrip().endswith(b"</results>")
        or reply.count(b"<opened") + reply.count(b"<error") != orders_per_request
    )


async def run_bench(settings: BenchSettings) -> BenchOutcome:
    """Set up the accounts, then time the order streams."""
    setup = [frame(xml) for xml in create_xml(setup_request(_shape(settings)))]
    await send_all(settings.host, settings.port, setup)
    streams = _client_streams(settings)
    result = await run_load(settings.host, settings.port, streams, persistent=settings.persistent)
    orders = result.requests * settings.orders_per_request
    return BenchOutcome(
        settings=settings,
        orders=orders,
        seconds=result.seconds,
        orders_per_second=result.rate(settings.orders_per_request),
        p50_ms=1000 * result.percentile(0.50),
        p99_ms=1000 * result.percentile(0.99),
        malformed_replies=_malformed(result, settings.orders_per_request),
    )


def bench(settings: BenchSettings) -> BenchOutcome:
    """``run_bench`` in a fresh event loop."""
    return asyncio.run(run_bench(settings))
