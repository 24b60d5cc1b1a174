"""Replay load files written by ``bourse gen`` against a running server.

This is what the seed's ``testing/client.py`` runs: the setup requests on
one connection, then the transactions stream split round-robin over C
persistent connections (``run_load``, one client each, so every client's
replies stay paired with its requests). Throughput alone would hide a
server that drops or mangles replies, so every reply is parsed and must be
a ``<results>`` document with one child per result its request asks for;
anything missing or malformed makes the exit status non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from bourse.bench.gen import REQUESTS_FILE, SETUP_FILE
from bourse.bench.load import LoadResult, run_load, send_all
from bourse.bench.xml import frame

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
# What a client sees when the server goes away or sends garbage framing.
_CONNECTION_FAILURES = (OSError, EOFError, asyncio.LimitOverrunError)


def read_frames(path: Path) -> list[bytes]:
    """The XML bodies of a file of framed requests (length line, then XML)."""
    data = path.read_bytes()
    bodies = []
    position = 0
    while position < len(data):
        newline = data.index(b"\n", position)
        start = newline + 1
        end = start + int(data[position:newline])
        if end > len(data):
            raise ValueError(f"{path}: last request is cut short")
        bodies.append(data[start:end])
        position = end
    return bodies


def expected_results(request: bytes) -> int:
    """How many children the reply to ``request`` must have: one per
    ``<symbol>``/``<account>`` pair or other child."""
    root = etree.fromstring(request, _PARSER)
    return sum(len(child) if child.tag == "symbol" else 1 for child in root)


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    """Where the files are and where to send them."""

    directory: Path
    host: str = "localhost"
    port: int = 12345
    clients: int = 1
    timeout: float = 600.0


@dataclass(slots=True)
class Tally:
    """Replies checked so far against what their requests asked for."""

    checked: int = 0
    missing: int = 0
    #: Why connections failed or time ran out (their unanswered requests count
    #: as missing).
    failures: list[str] = field(default_factory=list)
    malformed: int = 0
    opened: int = 0
    errors: int = 0

    def add(self, requests: list[bytes], replies: list[bytes]) -> None:
        """Check each reply against its request, in order."""
        self.missing += len(requests) - len(replies)
        for request, reply in zip(requests, replies, strict=False):
            self.checked += 1
            try:
                root = etree.fromstring(reply, _PARSER)
            except etree.XMLSyntaxError:
                self.malformed += 1
                continue
            if root.tag != "results" or len(root) != expected_results(request):
                self.malformed += 1
            self.opened += sum(child.tag == "opened" for child in root)
            self.errors += sum(child.tag == "error" for child in root)

    def lost(self, unanswered: int, why: BaseException) -> None:
        """A connection failed (or time ran out): count its requests as unanswered."""
        self.missing += unanswered
        self.failures.append(f"{type(why).__name__}: {why}")

    @property
    def ok(self) -> bool:
        """Every reply came and was well-formed."""
        return not (self.missing or self.malformed)


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What a replay measured and found."""

    setup_requests: int
    requests: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    tally: Tally


async def _setup(settings: ReplaySettings, setup: list[bytes], tally: Tally) -> None:
    try:
        replies = await send_all(settings.host, settings.port, [frame(xml) for xml in setup])
    except _CONNECTION_FAILURES as error:
        tally.lost(len(setup), error)
    else:
        tally.add(setup, replies)


async def _stream(
    settings: ReplaySettings, requests: list[bytes], tally: Tally
) -> tuple[LoadResult, float]:
    """Each client's share on its own connection; the merged timings."""
    shares = [requests[index :: settings.clients] for index in range(settings.clients)]
    started = time.perf_counter()
    results = await asyncio.gather(
        *(
            run_load(settings.host, settings.port, [[frame(xml) for xml in share]])
            for share in shares
        )
    )
    seconds = time.perf_counter() - started
    merged = LoadResult(seconds=seconds)
    for share, result in zip(shares, results, strict=True):
        tally.add(share, [reply for reply in result.replies[0] if reply])
        tally.failures.extend(result.failures)
        merged.requests += result.requests
        merged.histogram.add(result.histogram)
    return merged, seconds


async def run_replay(settings: ReplaySettings) -> ReplayOutcome:
    """Send the setup, then time the stream; check every reply."""
    setup = read_frames(settings.directory / SETUP_FILE)
    requests = read_frames(settings.directory / REQUESTS_FILE)
    tally = Tally()
    try:
        async with asyncio.timeout(settings.timeout):
            await _setup(settings, setup, tally)
            result, seconds = await _stream(settings, requests, tally)
    except TimeoutError as error:
        tally.lost(len(setup) + len(requests) - tally.checked - tally.missing, error)
        result, seconds = LoadResult(), settings.timeout
    return ReplayOutcome(
        setup_requests=len(setup),
        requests=result.requests,
        seconds=seconds,
        requests_per_second=result.rate(),
        p50_ms=1000 * result.percentile(0.50),
        p99_ms=1000 * result.percentile(0.99),
        tally=tally,
    )


def report(outcome: ReplayOutcome) -> str:
    """The lines ``client.py`` prints."""
    tally = outcome.tally
    lines = [
        f"{outcome.requests} requests in {outcome.seconds:.2f} s: "
        f"{outcome.requests_per_second:,.0f} requests/s; latency p50 {outcome.p50_ms:.2f} ms, "
        f"p99 {outcome.p99_ms:.2f} ms (after {outcome.setup_requests} setup requests)",
        f"{tally.checked} replies checked: {tally.opened} opened, {tally.errors} errors; "
        f"{tally.missing} missing, {tally.malformed} malformed",
        *(f"connection failed: {failure}" for failure in tally.failures),
    ]
    return "\n".join(lines)


def parser(default_directory: Path) -> argparse.ArgumentParser:
    """The command line of ``client.py``."""
    defaults = ReplaySettings(default_directory)
    arguments = argparse.ArgumentParser(
        description="Replay setup.bin then requests.bin (written by generate_tests.py or "
        "`bourse gen`) against a running server and check every reply. Queries and cancels "
        "assume a fresh exchange and one client."
    )
    arguments.add_argument(
        "--dir", type=Path, default=default_directory, help="load files (%(default)s)"
    )
    arguments.add_argument("--host", default=defaults.host, help="server (%(default)s)")
    arguments.add_argument("--port", type=int, default=defaults.port, help="port (%(default)s)")
    arguments.add_argument(
        "--clients",
        type=int,
        default=defaults.clients,
        help="connections sharing the stream round-robin (%(default)s)",
    )
    arguments.add_argument(
        "--timeout", type=float, default=defaults.timeout, help="seconds in all (%(default)s)"
    )
    return arguments


def main(argv: Sequence[str] | None = None, default_directory: Path = Path("generated")) -> int:
    """Replay, print the timings, and exit 1 if any reply is missing or malformed."""
    args = parser(default_directory).parse_args(argv)
    settings = ReplaySettings(args.dir, args.host, args.port, args.clients, args.timeout)
    outcome = asyncio.run(run_replay(settings))
    print(report(outcome))
    return 0 if outcome.tally.ok else 1
