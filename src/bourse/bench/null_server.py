"""A server that only frames, parses and answers: the yardstick for the
exchange's own overhead.

It speaks the same framing and reads requests with the same hardened
reader, then answers every order with ``<opened>`` (and everything else
with an error) without an engine or a database. The exchange's durable
throughput is compared with what the same client gets from this.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from bourse.core.commands import PlaceOrder, TransactionsRequest
from bourse.core.errors import ErrorCode
from bourse.core.results import Error, Opened, Result
from bourse.protocol.events import END_OF_STREAM, NEED_DATA, Frame, RequestError
from bourse.protocol.framing import FrameDecoder
from bourse.protocol.reader import read_request
from bourse.protocol.render import render_error, render_results

log = logging.getLogger(__name__)


def _answer(body: bytes) -> bytes:
    request = read_request(body)
    if isinstance(request, RequestError):
        return render_error(request)
    if not isinstance(request, TransactionsRequest):
        return render_results([])
    results: list[Result] = [
        Opened(command.echo, 1)
        if isinstance(command, PlaceOrder)
        else Error(ErrorCode.ORDER_NOT_FOUND, command.echo)
        for command in request.commands
    ]
    return render_results(results)


class _NullConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self._decoder = FrameDecoder()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._decoder.feed(data)
        self._drain()

    def eof_received(self) -> bool:
        self._decoder.feed_eof()
        self._drain()
        return False

    def _drain(self) -> None:
        assert self._transport is not None
        while True:
            event = self._decoder.next_event()
            if event is NEED_DATA:
                return
            if event is END_OF_STREAM:
                self._transport.close()
                return
            if isinstance(event, Frame):
                self._transport.write(_answer(event.body))
            elif isinstance(event, RequestError):
                self._transport.write(render_error(event))


async def serve_null(host: str, port: int) -> None:
    """Serve until cancelled."""
    server = await asyncio.get_running_loop().create_server(_NullConnection, host, port)
    for sock in server.sockets:
        log.info("null server listening on %s:%s", *sock.getsockname()[:2])
    async with server:
        await server.serve_forever()
