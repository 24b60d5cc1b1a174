"""Messages between gateway processes and the engine process.

A gateway and the engine talk over one Unix socket pair. Each side queues
items as it produces them and writes everything queued in one event-loop
turn as a single frame (a 4-byte length, then a pickled list), so a burst
of requests or replies costs one system call, not one per item. Both ends
are processes of this server started from the same code, so pickle is
safe here; it carries the core's slotted dataclasses (commands, results,
error codes) with no schema to keep in step, and measures at about 3 µs to
pickle and 1.4 µs to unpickle one single-order request (docs/architecture.md).

One frame holds at most ``MAX_FRAME`` bytes (the 4-byte length could not
say more than 4 GiB, and one huge frame would hold every reply behind it in
memory at once): a turn's items that pickle larger are split over several
frames, in order. A single item larger than that on its own is handed to
``undeliverable``, which says what to send instead.

Gateway to engine, items are ``(token, Request)``, and first of all
``READY`` once the gateway accepts connections and its counters every
second (``STATS``); engine to gateway,
``(token, outcome)`` where the outcome is the request's results (committed),
an ``ErrorCode`` (no effect) or None (outcome unknown: drop the connection),
and the market data of committed batches under negative kinds.
"""

from __future__ import annotations

import abc
import asyncio
import pickle
import struct
from typing import Any, cast

HEADER = struct.Struct("!I")

#: Largest frame written, in bytes of pickle.
MAX_FRAME = 64 << 20

#: A gateway's first item: it is accepting connections (tokens start at 1).
READY = (0, None)

#: The token of a gateway's periodic counters, ``(STATS, snapshot)``.
STATS = -1

#: Engine to gateway, market data (``bourse.server.publisher``), each as
#: ``(kind, pickled value)``: pickled once, sent to every gateway.
MARKET_UPDATE = -2
MARKET_SNAPSHOT = -3
STANDINGS = -4


class MessageStream(asyncio.Protocol, abc.ABC):
    """One end of a gateway link: batched frames out, whole frames in."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._max_frame = max_frame
        self._transport: asyncio.Transport | None = None
        self._outgoing: list[Any] = []
        self._received = bytearray()
        self._loop = asyncio.get_running_loop()
        self.closed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self.closed.set()
        self.link_lost()

    def data_received(self, data: bytes) -> None:
        received = self._received
        received += data
        start = 0
        while len(received) - start >= HEADER.size:
            (length,) = HEADER.unpack_from(received, start)
            end = start + HEADER.size + length
            if len(received) < end:
                break
            items = pickle.loads(received[start + HEADER.size : end])  # noqa: S301 - our own process
            start = end
            self.items_received(items)
        del received[:start]

    def send(self, item: Any) -> None:
        """Queue ``item``; everything queued this turn leaves in one frame."""
        if not self._outgoing:
            self._loop.call_soon(self._flush)
        self._outgoing.append(item)

    def close(self) -> None:
        """Close after what is queued has been written."""
        self._flush()
        if self._transport is not None:
            self._transport.close()

    def _flush(self) -> None:
        items, self._outgoing = self._outgoing, []
        transport = self._transport
        if items and transport is not None and not transport.is_closing():
            for payload in self._frames(items):
                transport.write(HEADER.pack(len(payload)) + payload)

    def _frames(self, items: list[Any]) -> list[bytes]:
        """``items`` pickled into frames of at most ``max_frame`` bytes, in order."""
        payload = pickle.dumps(items, pickle.HIGHEST_PROTOCOL)
        if len(payload) <= self._max_frame:
            return [payload]
        if len(items) > 1:
            half = len(items) // 2
            return self._frames(items[:half]) + self._frames(items[half:])
        replacement = self.undeliverable(items[0])
        return [] if replacement is None else self._frames([replacement])

    # for subclasses

    @abc.abstractmethod
    def items_received(self, items: list[Any]) -> None:
        """Handle the items of one frame, in order."""

    @abc.abstractmethod
    def undeliverable(self, item: Any) -> Any | None:
        """What to send instead of ``item``, which alone pickles larger
        than a frame may be (None: nothing)."""

    @abc.abstractmethod
    def link_lost(self) -> None:
        """The other process closed its end (or died)."""
