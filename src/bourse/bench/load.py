"""A load client: C connections, closed loop or open loop at a target rate.

Closed loop (the default): each client sends one framed request, waits for
its whole reply, and sends the next, on the same connection or on a new one
per request. Open loop (``rate``): request ``i`` of the whole run is due at
``t0 + i / rate`` whatever the server is doing; a persistent connection
sends at the due time and a separate reader collects replies in order
(pipelining), and each latency is measured from the *due* time, not from
when the send happened, so a slow server cannot hide its queueing
(no coordinated omission). Latencies go into an HdrHistogram in
microseconds. Replies are kept per stream, aligned with the requests
(``b""`` where none came), so callers can pair every request with its reply;
a connection that fails is recorded and its remaining requests stay
unanswered instead of aborting the other clients.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

REPLY_END = b"</results>\n"
# 1 µs to 60 s at 3 significant digits.
LOWEST_US = 1
HIGHEST_US = 60_000_000
# What a client sees when the server goes away or sends garbage framing.
CONNECTION_FAILURES = (OSError, EOFError, asyncio.LimitOverrunError)


def new_histogram() -> HdrHistogram:
    """An empty latency histogram (microseconds)."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, 3)


@dataclass(slots=True)
class LoadResult:
    """What a load run measured."""

    seconds: float = 0.0
    requests: int = 0
    histogram: HdrHistogram = field(default_factory=new_histogram)
    replies: list[list[bytes]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    on_reply: Callable[[], None] | None = None

    def rate(self, per_request: int = 1) -> float:
        """Requests (or, times ``per_request``, commands) per second."""
        return self.requests * per_request / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        """The latency (seconds) below which ``fraction`` of requests completed."""
        if not self.requests:
            return 0.0
        return float(self.histogram.get_value_at_percentile(100 * fraction)) / 1e6

    def max_latency(self) -> float:
        """The slowest request, in seconds."""
        return float(self.histogram.get_max_value()) / 1e6 if self.requests else 0.0

    def record(self, stream: int, index: int, reply: bytes, since: float) -> None:
        """A reply to request ``index`` of ``stream``, timed from ``since``."""
        micros = int((time.perf_counter() - since) * 1e6)
        self.histogram.record_value(min(HIGHEST_US, max(LOWEST_US, micros)))
        self.replies[stream][index] = reply
        self.requests += 1
        if self.on_reply is not None:
            self.on_reply()


async def _read_reply(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(REPLY_END)


async def send_one(host: str, port: int, request: bytes) -> bytes:
    """One request on a connection of its own; its reply."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        return await _read_reply(reader)
    finally:
        writer.close()


@dataclass(frozen=True, slots=True)
class _Client:
    """One stream's requests and where to send them."""

    host: str
    port: int
    stream: int
    requests: list[bytes]
    result: LoadResult

    async def closed_persistent(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            for index, request in enumerate(self.requests):
                started = time.perf_counter()
                writer.write(request)
                self.result.record(self.stream, index, await _read_reply(reader), started)
        finally:
            writer.close()

    async def closed_per_request(self) -> None:
        for index, request in enumerate(self.requests):
            started = time.perf_counter()
            reply = await send_one(self.host, self.port, request)
            self.result.record(self.stream, index, reply, started)

    async def open_persistent(self, due: list[float]) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        reading = asyncio.create_task(self._read_in_order(reader, due))
        try:
            for request, at in zip(self.requests, due, strict=True):
                await _sleep_until(at)
                writer.write(request)
            await reading
        finally:
            reading.cancel()
            writer.close()

    async def _read_in_order(self, reader: asyncio.StreamReader, due: list[float]) -> None:
        for index, at in enumerate(due):
            self.result.record(self.stream, index, await _read_reply(reader), at)

    async def open_per_request(self, due: list[float]) -> None:
        tasks = []
        for index, (request, at) in enumerate(zip(self.requests, due, strict=True)):
            await _sleep_until(at)
            tasks.append(asyncio.create_task(self._timed_exchange(index, request, at)))
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, CONNECTION_FAILURES):
                self.result.failures.append(_describe(outcome))
            elif isinstance(outcome, BaseException):
                raise outcome

    async def _timed_exchange(self, index: int, request: bytes, at: float) -> None:
        reply = await send_one(self.host, self.port, request)
        self.result.record(self.stream, index, reply, at)


async def _sleep_until(at: float) -> None:
    delay = at - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


async def _guarded(run: Callable[[], Awaitable[None]], result: LoadResult) -> None:
    """Run one client; a connection failure is recorded, not raised."""
    try:
        await run()
    except CONNECTION_FAILURES as error:
        result.failures.append(_describe(error))


def _schedule(streams: list[list[bytes]], rate: float, start: float) -> list[list[float]]:
    """Due times: request ``k`` of stream ``c`` is request ``k * C + c`` overall."""
    count = len(streams)
    return [
        [start + (k * count + c) / rate for k in range(len(stream))]
        for c, stream in enumerate(streams)
    ]


async def run_load(
    host: str,
    port: int,
    streams: list[list[bytes]],
    *,
    persistent: bool = True,
    rate: float | None = None,
    on_reply: Callable[[], None] | None = None,
) -> LoadResult:
    """Run one client per stream concurrently until all are done; ``rate``
    (requests per second over all streams) makes it open loop."""
    result = LoadResult(replies=[[b""] * len(stream) for stream in streams], on_reply=on_reply)
    clients = [_Client(host, port, c, stream, result) for c, stream in enumerate(streams)]
    started = time.perf_counter()
    if rate is None:
        runs: list[Callable[[], Awaitable[None]]] = [
            c.closed_persistent if persistent else c.closed_per_request for c in clients
        ]
    else:
        due = _schedule(streams, rate, started)
        runs = [
            partial(c.open_persistent if persistent else c.open_per_request, times)
            for c, times in zip(clients, due, strict=True)
        ]
    await asyncio.gather(*(_guarded(run, result) for run in runs))
    result.seconds = time.perf_counter() - started
    return result


async def send_all(host: str, port: int, requests: list[bytes]) -> list[bytes]:
    """Send ``requests`` one after another on one connection; their replies
    (raises if the connection fails)."""
    result = LoadResult(replies=[[b""] * len(requests)])
    await _Client(host, port, 0, requests, result).closed_persistent()
    return result.replies[0]
