"""The load client's handle on the subscriber process of ``bourse bench
--subscribers N``: start it once the bench's symbols are published, and
after the load tell it each symbol's final ``seq`` and collect its figures.

The final ``seq`` of every symbol comes from ``GET /api/symbols``, read
until two reads in a row agree (with gateways, each serves its own copy of
the market, a few milliseconds apart). The figures are also put into words
here, for the lines ``bourse bench`` prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import aiohttp

from bourse.bench.subscribers import CatchUp, FeedResult, FeedSettings, Ready, run_subscribers

#: Seconds for the symbols to be published, and for the process to start.
PUBLISH_TIMEOUT = 30.0
SPAWN_TIMEOUT = 60.0
#: Seconds the subscribers may take to reach the final seqs after the load.
CATCH_UP_TIMEOUT = 60.0
SETTLE_INTERVAL = 0.1
EXIT_TIMEOUT = 10.0


class FeedUnavailableError(RuntimeError):
    """The feed could not be followed: no web server, or subscribers refused."""


async def symbol_seqs(host: str, http_port: int) -> dict[str, int]:
    """Each symbol's ``seq``, from ``GET /api/symbols``."""
    url = f"http://{host}:{http_port}/api/symbols"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        response.raise_for_status()
        rows: list[dict[str, Any]] = await response.json()
    return {row["symbol"]: int(row["seq"]) for row in rows}


async def published_symbols(host: str, http_port: int, expected: set[str]) -> tuple[str, ...]:
    """Every symbol of ``/api/symbols``, once it lists all of ``expected``."""
    deadline = asyncio.get_running_loop().time() + PUBLISH_TIMEOUT
    while True:
        try:
            seqs = await symbol_seqs(host, http_port)
        except (aiohttp.ClientError, OSError) as error:
            raise FeedUnavailableError(f"no market data on port {http_port}: {error}") from error
        if expected.issubset(seqs):
            return tuple(sorted(seqs))
        if asyncio.get_running_loop().time() > deadline:
            missing = ", ".join(sorted(expected - set(seqs)))
            raise FeedUnavailableError(f"/api/symbols does not list {missing}")
        await asyncio.sleep(SETTLE_INTERVAL)


async def settled_seqs(host: str, http_port: int) -> dict[str, int]:
    """``symbol_seqs`` once two reads in a row agree."""
    seqs = await symbol_seqs(host, http_port)
    while True:
        await asyncio.sleep(SETTLE_INTERVAL)
        again = await symbol_seqs(host, http_port)
        if again == seqs:
            return seqs
        seqs = again


async def _receive(link: Connection, timeout: float) -> object:
    """The process's next word, or ``FeedUnavailableError`` if none comes."""
    try:
        if await asyncio.to_thread(link.poll, timeout):
            return link.recv()
    except (EOFError, OSError) as error:
        raise FeedUnavailableError("the subscriber process ended") from error
    raise FeedUnavailableError(f"no word from the subscriber process in {timeout:.0f} s")


class SubscriberFleet:
    """The subscriber process, seen from the load client."""

    def __init__(self, process: BaseProcess, link: Connection) -> None:
        self._process = process
        self._link = link

    @classmethod
    async def start(
        cls, host: str, http_port: int, subscribers: int, expected: set[str]
    ) -> SubscriberFleet:
        """Start ``subscribers`` subscribers to every symbol; return once each
        holds its snapshots. ``expected``: symbols that must be published first."""
        symbols = await published_symbols(host, http_port, expected)
        context = multiprocessing.get_context("spawn")
        link, child_link = context.Pipe()
        settings = FeedSettings(host, http_port, subscribers, symbols)
        process = context.Process(
            target=run_subscribers, args=(settings, child_link), name="bench-subscribers"
        )
        process.start()
        child_link.close()
        fleet = cls(process, link)
        try:
            ready = await _receive(link, SPAWN_TIMEOUT + settings.ready_timeout)
            if not isinstance(ready, Ready) or ready.problems:
                problems = ready.problems if isinstance(ready, Ready) else ("no answer",)
                raise FeedUnavailableError("subscribers not ready: " + "; ".join(problems[:3]))
        except BaseException:
            fleet.stop()
            raise
        return fleet

    async def finish(
        self, host: str, http_port: int, timeout: float = CATCH_UP_TIMEOUT
    ) -> FeedResult:
        """Wait (up to ``timeout`` seconds) for the subscribers to reach the
        final seqs; their figures."""
        targets = await settled_seqs(host, http_port)
        self._link.send(CatchUp(targets, timeout))
        result = await _receive(self._link, timeout + EXIT_TIMEOUT)
        if not isinstance(result, FeedResult):
            raise FeedUnavailableError(f"unexpected word from the subscriber process: {result!r}")
        await asyncio.to_thread(self._process.join, EXIT_TIMEOUT)
        return result

    def stop(self) -> None:
        """Tell the process to stop; end it by its pid if it does not."""
        if self._process.is_alive():
            with contextlib.suppress(OSError):
                self._link.send(None)
            self._process.join(EXIT_TIMEOUT)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(EXIT_TIMEOUT)
        self._link.close()


def feed_lines(feed: FeedResult) -> list[str]:
    """The feed figures in one line, then its problems, indented."""
    delays = ", ".join(f"{name} {value:.2f}" for name, value in feed.delay_ms.items())
    figures = (
        f"feed: {feed.subscribers} subscribers x {feed.symbols} symbols, "
        f"{feed.messages:,} messages ({feed.messages_per_second:,.0f}/s, "
        f"{feed.messages / max(feed.frames, 1):.1f} per frame); "
        f"delay ms {delays or 'unknown (no committed times)'}; "
        f"{feed.gaps} gaps, {feed.snapshots_after_first} snapshots after the first, "
        f"{feed.behind} behind, subscriber CPU {feed.cpu_seconds:.2f} s"
    )
    return [figures, *(f"  {problem}" for problem in feed.problems)]
