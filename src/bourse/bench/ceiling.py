"""The engine's own ceiling: durable orders/s with no sockets and no XML.

``python -m bourse.bench.ceiling`` runs the exchange service exactly as the
engine process does (apply in arrival order, group commit to PostgreSQL,
release after COMMIT) but feeds it pre-parsed requests from ``lanes``
closed-loop submitters, each submitting its next request when the last one
is released. What it reaches is the most one engine process can take from
any number of gateways; set against a gateway's cost per request it says
how many gateway cores one engine can feed (docs/architecture.md). The
timed run ends when the tables have caught up too (the projection runs in
the same process), so its time and CPU include writing them.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bourse.bench.workload import WorkloadShape, setup_request, transaction_stream
from bourse.core.commands import Request, TransactionsRequest
from bourse.core.errors import ErrorCode
from bourse.core.results import Error, Result
from bourse.server.service import ExchangeService
from bourse.store.selection import open_database
from bourse.store.store import Store


@dataclass(slots=True)
class CeilingResult:
    """What one run reached."""

    orders: int
    seconds: float
    #: CPU seconds this (the engine's) process used meanwhile.
    cpu_seconds: float
    batches: int
    refused: int
    #: Windows the projection wrote.
    windows: int = 0

    @property
    def orders_per_second(self) -> float:
        return self.orders / self.seconds


class _Lane:
    """One closed-loop submitter: its next request goes in when the last
    one is released."""

    __slots__ = ("_done", "_requests", "_service", "refused")

    def __init__(
        self, service: ExchangeService, requests: Iterator[Request], done: asyncio.Event
    ) -> None:
        self._service = service
        self._requests = requests
        self._done = done
        self.refused = 0

    def submit_next(self) -> None:
        request = next(self._requests, None)
        if request is None:
            self._done.set()
        else:
            self._service.submit(request, self)

    def release(self, results: Sequence[Result]) -> None:
        self.refused += sum(isinstance(result, Error) for result in results)
        self.submit_next()

    def refuse(self, code: ErrorCode) -> None:
        raise RuntimeError(f"request refused: {code.value}")

    def drop(self) -> None:
        raise RuntimeError("commit outcome unknown")


async def _apply_one(service: ExchangeService, request: Request) -> None:
    done = asyncio.Event()
    _Lane(service, iter([request]), done).submit_next()
    await service.drain()


async def measure(url: str, shape: WorkloadShape, lanes: int, seed: int = 1) -> CeilingResult:
    """Set up ``shape``'s accounts, then time its stream through ``lanes``."""
    store = Store(url)
    service = ExchangeService(store)
    committer = asyncio.create_task(service.run())
    try:
        await service.start()
        await _apply_one(service, setup_request(shape))
        stream: list[TransactionsRequest] = transaction_stream(shape, seed)
        batches_before = service.stats.batches
        events = [asyncio.Event() for _ in range(lanes)]
        workers = [
            _Lane(service, iter(stream[index::lanes]), events[index]) for index in range(lanes)
        ]
        started, cpu_started = time.perf_counter(), time.process_time()
        for worker in workers:
            worker.submit_next()
        await asyncio.gather(*(event.wait() for event in events))
        await service.drain()
        await store.projector.drain()
        seconds = time.perf_counter() - started
        return CeilingResult(
            orders=shape.requests * shape.orders_per_request,
            seconds=seconds,
            cpu_seconds=time.process_time() - cpu_started,
            batches=service.stats.batches - batches_before,
            refused=sum(worker.refused for worker in workers),
            windows=store.projector.stats.windows,
        )
    finally:
        committer.cancel()
        await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Print the ceiling for the given load; a fresh database is expected."""
    import uvloop  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m bourse.bench.ceiling", description=__doc__)
    parser.add_argument(
        "--database-url", default=None, help="an empty database (default: embedded)"
    )
    parser.add_argument("--data-dir", default="bourse-ceiling-data", help="embedded data dir")
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--orders-per-request", type=int, default=1)
    parser.add_argument("--lanes", type=int, default=256, help="requests in flight")
    args = parser.parse_args(argv)
    shape = WorkloadShape(
        requests=args.requests,
        orders_per_request=args.orders_per_request,
        query_share=0.0,
        cancel_share=0.0,
    )
    with open_database(args.database_url, Path(args.data_dir)) as database:
        result = uvloop.run(measure(database.url, shape, args.lanes))
    print(
        f"{result.orders:,} orders in {result.seconds:.2f} s: "
        f"{result.orders_per_second:,.0f} orders/s; engine CPU "
        f"{1e6 * result.cpu_seconds / shape.requests:.1f} µs per request; {result.batches} batches "
        f"({shape.requests / max(result.batches, 1):.1f} requests per batch); "
        f"{result.refused} orders refused; the tables written in {result.windows} windows"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
