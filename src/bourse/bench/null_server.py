"""Servers that only answer: yardsticks for the exchange and for the client.

The parsing server speaks the same framing and reads requests with the
same hardened reader, then answers every order with ``<opened>`` (and
everything else with an error) without an engine or a database: the
exchange's durable throughput is compared with what the same client gets
from it. The fixed server (``fixed=True``) does not even parse: it frames
each request and answers one constant ``<opened>`` per ``<order`` it
counts, which shows how fast the load client itself can go.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
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


_FIXED_OPENED = b'<opened sym="S" amount="1" limit="1" id="1"/>\n'
_FIXED_HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n<results>\n'
_FIXED_TAIL = b"</results>\n"


def fixed_answer(body: bytes) -> bytes:
    """A constant ``<opened>`` per ``<order`` in ``body``, without parsing."""
    return _FIXED_HEAD + _FIXED_OPENED * body.count(b"<order") + _FIXED_TAIL


class _NullConnection(asyncio.Protocol):
    def __init__(self, answer: Callable[[bytes], bytes]) -> None:
        self._answer = answer
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
                self._transport.write(self._answer(event.body))
            elif isinstance(event, RequestError):
                self._transport.write(render_error(event))


async def serve_null(host: str, port: int, *, fixed: bool = False) -> None:
    """Serve until cancelled; ``fixed`` answers without parsing."""
    answer = fixed_answer if fixed else _answer
    server = await asyncio.get_running_loop().create_server(
        lambda: _NullConnection(answer), host, port
    )
    for sock in server.sockets:
        log.info("null server listening on %s:%s", *sock.getsockname()[:2])
    async with server:
        await server.serve_forever()
