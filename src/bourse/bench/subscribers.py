"""Market-data subscribers for ``bourse bench --subscribers N``, run in a
process of their own so their CPU never sits in the load client's loop.

N WebSocket connections in one event loop each subscribe to every symbol
and follow every frame (``feed_tally``: gaps, fresh snapshots, delays).
Each update's delay is its arrival time minus its ``committed`` time (the
epoch seconds at which the engine saw its batch commit; same machine,
same clock). The parent drives the process through a pipe: the process
says when every subscriber holds its snapshots, is told each symbol's
final ``seq`` after the load, waits until every subscriber has reached it,
and sends back a ``FeedResult``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import aiohttp
import uvloop

from bourse.bench.feed_tally import Arrivals, Frame, Tally, read_frame

#: Largest subscribe op sent, in bytes (the server refuses larger ones).
MAX_OP_BYTES = 3000
#: Distinct frames whose parse is remembered before the memory is cleared.
PARSED_FRAMES = 4096
#: Times a subscriber asks again for symbols its gateway did not know yet.
SUBSCRIBE_RETRIES = 50
RETRY_DELAY = 0.1
POLL = 0.02
#: Problems listed in a result (the counts are always whole).
PROBLEMS_SHOWN = 10


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """Where the feed is, how many subscribers, and what they follow."""

    host: str
    http_port: int
    subscribers: int
    symbols: tuple[str, ...]
    ready_timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class Ready:
    """The process's first word: every subscriber holds its snapshots, or why not."""

    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CatchUp:
    """The parent's word after the load: each symbol's final ``seq``."""

    targets: dict[str, int]
    timeout: float


@dataclass(frozen=True, slots=True)
class FeedResult:
    """What the subscribers received and found wrong."""

    subscribers: int
    symbols: int
    messages: int
    #: Frames that carried them (a frame may hold an array of messages).
    frames: int
    messages_per_second: float
    fewest_messages: int
    delay_ms: dict[str, float]
    undated: int
    gaps: int
    snapshots_after_first: int
    malformed: int
    behind: int
    cpu_seconds: float
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every subscriber stayed connected, saw no gap and caught up."""
        return not (self.gaps or self.malformed or self.behind or self.problems)


def subscribe_ops(symbols: tuple[str, ...]) -> list[str]:
    """Subscribe ops for ``symbols``, each small enough for the server."""
    ops: list[str] = []
    batch: list[str] = []
    for symbol in symbols:
        if batch and len(_subscribe_op([*batch, symbol])) > MAX_OP_BYTES:
            ops.append(_subscribe_op(batch))
            batch = []
        batch.append(symbol)
    return [*ops, _subscribe_op(batch)] if batch else ops


def _subscribe_op(symbols: list[str]) -> str:
    return json.dumps({"op": "subscribe", "symbols": symbols, "channels": ["book", "trades"]})


class Fleet:
    """The subscribers of the process, in one event loop."""

    def __init__(self, settings: FeedSettings) -> None:
        self.settings = settings
        symbols = frozenset(settings.symbols)
        self.tallies = [Tally(symbols) for _ in range(settings.subscribers)]
        self.arrivals = Arrivals()
        self._ops = subscribe_ops(settings.symbols)
        self._frames: dict[str, Frame] = {}
        self._sockets: list[aiohttp.ClientWebSocketResponse] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    async def connect(self, session: aiohttp.ClientSession) -> list[str]:
        """Connect and subscribe everyone; what kept any from its snapshots."""
        self._tasks = [asyncio.create_task(self._follow(session, tally)) for tally in self.tallies]
        deadline = time.monotonic() + self.settings.ready_timeout
        while not all(tally.ready or tally.ended for tally in self.tallies):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL)
        unready = sum(not tally.ready for tally in self.tallies)
        late = [f"{unready} subscribers without every snapshot"] if unready else []
        return self.problems() + late

    async def catch_up(self, order: CatchUp) -> None:
        """Wait until every subscriber has reached ``order.targets``."""
        deadline = time.monotonic() + order.timeout
        while time.monotonic() < deadline:
            if all(tally.ended or tally.behind(order.targets) is None for tally in self.tallies):
                return
            await asyncio.sleep(POLL)

    async def close(self) -> None:
        """Close every connection (ending each subscriber's reading)."""
        self._closing = True
        await asyncio.gather(*(ws.close() for ws in self._sockets), return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def problems(self) -> list[str]:
        """What went wrong with each subscriber, numbered from 0."""
        found = []
        for number, tally in enumerate(self.tallies):
            if tally.ended is not None:
                found.append(f"subscriber {number}: {tally.ended}")
            found.extend(f"subscriber {number}: feed error: {error}" for error in tally.errors)
        return found

    def result(self, targets: dict[str, int], cpu_seconds: float) -> FeedResult:
        """The figures, and the problems (at most ``PROBLEMS_SHOWN`` listed)."""
        tallies = self.tallies
        lagging = [(n, tally.behind(targets)) for n, tally in enumerate(tallies)]
        behind = [f"subscriber {n}: behind, {where}" for n, where in lagging if where]
        problems = self.problems() + behind
        return FeedResult(
            subscribers=len(tallies),
            symbols=len(self.settings.symbols),
            messages=self.arrivals.count,
            frames=self.arrivals.frames,
            messages_per_second=self.arrivals.per_second(),
            fewest_messages=min((tally.updates for tally in tallies), default=0),
            delay_ms=self.arrivals.delay_ms(),
            undated=self.arrivals.undated,
            gaps=sum(tally.gaps for tally in tallies),
            snapshots_after_first=sum(tally.snapshots_after_first for tally in tallies),
            malformed=sum(tally.malformed for tally in tallies),
            behind=len(behind),
            cpu_seconds=cpu_seconds,
            problems=problems[:PROBLEMS_SHOWN],
        )

    def take_frame(self, tally: Tally, data: str) -> None:
        """Account for one text frame (read once for all subscribers)."""
        frame = self._frames.get(data)
        if frame is None:
            if len(self._frames) >= PARSED_FRAMES:
                self._frames.clear()
            frame = self._frames[data] = read_frame(data)
        tally.apply(frame)
        self.arrivals.record(frame, time.time())

    async def _follow(self, session: aiohttp.ClientSession, tally: Tally) -> None:
        url = f"http://{self.settings.host}:{self.settings.http_port}/ws"
        try:
            async with session.ws_connect(url, max_msg_size=0) as ws:
                self._sockets.append(ws)
                await self._subscribe(ws)
                await self._read(ws, tally)
                if not self._closing:
                    tally.ended = f"closed by the server ({ws.close_code})"
        except (aiohttp.ClientError, OSError) as error:
            tally.ended = f"{type(error).__name__}: {error}"

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        for op in self._ops:
            await ws.send_str(op)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, tally: Tally) -> None:
        retries = 0
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            self.take_frame(tally, message.data)
            if tally.errors and not tally.ready and retries < SUBSCRIBE_RETRIES:
                tally.errors.clear()  # a gateway that has not seen the symbols yet
                retries += 1
                await asyncio.sleep(RETRY_DELAY)
                await self._subscribe(ws)


async def _serve(settings: FeedSettings, link: Connection) -> None:
    fleet = Fleet(settings)
    connector = aiohttp.TCPConnector(limit=0)  # the default would cap connections at 100
    async with aiohttp.ClientSession(connector=connector) as session:
        try:
            link.send(Ready(tuple(await fleet.connect(session))))
            started = time.process_time()
            order: CatchUp | None = await asyncio.to_thread(link.recv)
            targets = {} if order is None else order.targets
            if order is not None:
                await fleet.catch_up(order)
            cpu_seconds = time.process_time() - started
        finally:
            await fleet.close()
    link.send(fleet.result(targets, cpu_seconds))


def run_subscribers(settings: FeedSettings, link: Connection) -> None:
    """The subscriber process: follow the feed until told the final seqs
    (or ``None``: stop), then send the ``FeedResult`` back on ``link``."""
    uvloop.run(_serve(settings, link))
