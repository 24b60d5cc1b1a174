"""A closed-loop load client: C connections, each sending its requests in turn.

Each client sends one framed request, waits for its whole reply, and sends
the next (on the same connection, or on a new one per request). The
requests are prepared before the clock starts. What it returns is enough
to compute throughput and latency, and to check that every reply came.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

REPLY_END = b"</results>\n"


@dataclass(slots=True)
class LoadResult:
    """What a load run measured."""

    seconds: float = 0.0
    requests: int = 0
    latencies: list[float] = field(default_factory=list)
    replies: list[bytes] = field(default_factory=list)

    def rate(self, per_request: int = 1) -> float:
        """Requests (or, times ``per_request``, commands) per second."""
        return self.requests * per_request / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        """The latency below which ``fraction`` of requests completed."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


async def _read_reply(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(REPLY_END)


async def _persistent_client(
    host: str, port: int, requests: list[bytes], result: LoadResult
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for request in requests:
            started = time.perf_counter()
            writer.write(request)
            reply = await _read_reply(reader)
            result.latencies.append(time.perf_counter() - started)
            result.replies.append(reply)
            result.requests += 1
    finally:
        writer.close()


async def _connection_per_request_client(
    host: str, port: int, requests: list[bytes], result: LoadResult
) -> None:
    for request in requests:
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(request)
            reply = await _read_reply(reader)
        finally:
            writer.close()
        result.latencies.append(time.perf_counter() - started)
        result.replies.append(reply)
        result.requests += 1


async def run_load(
    host: str, port: int, streams: list[list[bytes]], *, persistent: bool = True
) -> LoadResult:
    """Run one client per stream concurrently until all are done."""
    result = LoadResult()
    client = _persistent_client if persistent else _connection_per_request_client
    started = time.perf_counter()
    await asyncio.gather(*(client(host, port, stream, result) for stream in streams))
    result.seconds = time.perf_counter() - started
    return result


async def send_all(host: str, port: int, requests: list[bytes]) -> list[bytes]:
    """Send ``requests`` one after another on one connection; their replies."""
    result = LoadResult()
    await _persistent_client(host, port, requests, result)
    return result.replies
