"""One client connection: bytes in, framed requests answered in order.

An asyncio ``Protocol`` around the sans-I/O framing decoder. Each framed
request reserves a slot in the connection's outbox before it is handed to
the exchange, so pipelined requests are answered in arrival order even
though their replies are released only when their batches commit. One timer per
connection enforces two limits: the idle timeout between requests (the
connection is closed) and the total deadline for receiving one request
(answered with an error, then closed). The connection stops reading while
unsent replies pile up (a client that does not read) or while too many of
its requests are in progress (a client that pipelines without bound), so
what one client costs the server stays bounded; past ``max_unsent_bytes``
it is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from typing import cast

from bourse.core.commands import Request, TransactionsRequest
from bourse.core.errors import ErrorCode
from bourse.protocol.events import END_OF_STREAM, NEED_DATA, Frame, RequestError
from bourse.protocol.framing import FrameDecoder
from bourse.protocol.reader import ReaderLimits, read_request
from bourse.protocol.render import render_error
from bourse.server.access import AccessPolicy
from bourse.server.config import ServerConfig
from bourse.server.limits import TokenBucket
from bourse.server.metrics import FrontendCounters
from bourse.server.outbox import Outbox, Reply
from bourse.server.registry import ConnectionRegistry

log = logging.getLogger(__name__)

#: SO_LINGER on with a zero timeout: close() sends a reset at once.
RESET_ON_CLOSE = struct.pack("ii", 1, 0)

#: Hands a parsed request to the exchange (in this process or through a
#: gateway's link to the engine); the reply slot is settled later.
Submit = Callable[[Request, Reply], None]


class ExchangeConnection(asyncio.Protocol):
    """Serves the requests of one TCP connection."""

    def __init__(
        self,
        submit: Submit,
        config: ServerConfig,
        access: AccessPolicy,
        registry: ConnectionRegistry[ExchangeConnection],
        on_failure: Callable[[BaseException], None],
        *,
        admin: bool,
        counters: FrontendCounters,
    ) -> None:
        self._counters = counters
        self._submit_request = submit
        self._access = access
        self._admin = admin
        self._peer: str | None = None
        self._reader_limits = ReaderLimits(accept_token=access.asks_tokens)
        self._config = config
        self._registry = registry
        self._on_failure = on_failure
        self._decoder = FrameDecoder(config.max_request_size)
        self._outbox = Outbox(self._write, self.close, self.abort)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._idle_since = self._loop.time()
        self._request_started: float | None = None
        self._closing = False
        self._writing_paused = False
        self._reading_paused = False
        self._counted_open = False
        self._bucket = (
            TokenBucket(config.connection_rate, config.connection_burst)
            if config.connection_rate > 0
            else None
        )

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass it
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) else None
        transport.set_write_buffer_limits(high=self._config.write_high_water)
        self._registry.add(self)
        self._counters.open += 1
        self._counted_open = True
        self._schedule_timer(self._idle_since + self._config.idle_timeout)

    def data_received(self, data: bytes) -> None:
        self._decoder.feed(data)
        self._answer_ready_requests()

    def eof_received(self) -> bool:
        """The client stopped sending: answer what it sent, then close
        (keeping the transport open until the replies awaiting their
        commit have left)."""
        self._decoder.feed_eof()
        self._answer_ready_requests()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        if self._counted_open:
            self._counters.open -= 1
            self._counted_open = False
        self._registry.discard(self)

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._update_reading()

    def _update_reading(self) -> None:
        """Read only while the client reads its replies and has fewer than
        ``max_pipelined`` requests in progress."""
        transport = self._transport
        if transport is None or self._closing:
            return
        hold = self._writing_paused or len(self._outbox) >= self._config.max_pipelined
        if hold and not self._reading_paused:
            transport.pause_reading()
            self._reading_paused = True
        elif not hold and self._reading_paused:
            transport.resume_reading()
            self._reading_paused = False
            self._answer_ready_requests()  # frames already received

    # shutdown

    @property
    def is_busy(self) -> bool:
        """True while a request is arriving or a reply is still owed."""
        return self._decoder.in_request or not self._outbox.is_empty

    def close(self) -> None:
        """Close after the replies already written have been sent."""
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection at once: a reset, discarding whatever the
        kernel still holds for the client (a client that does not read
        would otherwise keep it, and never see the connection end)."""
        self._closing = True
        if self._transport is not None:
            sock = self._transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
            self._transport.abort()

    # requests

    def _answer_ready_requests(self) -> None:
        limit = self._config.max_pipelined
        while not self._closing and len(self._outbox) < limit:
            event = self._decoder.next_event()
            if event is NEED_DATA:
                break
            if event is END_OF_STREAM:
                self._outbox.reserve().send_last(b"")
                return
            if isinstance(event, Frame):
                self._submit(event.body)
            elif isinstance(event, RequestError):
                self._refuse(event)
                if event.fatal:
                    return
        self._note_progress()
        if len(self._outbox) >= limit:
            self._update_reading()

    def _submit(self, body: bytes) -> None:
        if self._bucket is not None and not self._bucket.allow():
            self._answer_error(RequestError(ErrorCode.RATE_LIMITED))
            return
        request = read_request(body, self._reader_limits)
        if isinstance(request, RequestError):
            self._answer_error(request)
            return
        refusal = self._refusal(request)
        if refusal is not None:
            self._answer_error(RequestError(refusal))
            return
        try:
            self._submit_request(request, self._outbox.reserve())
        except Exception as exc:  # a bug: the exchange state can no longer be trusted
            log.exception("request failed unexpectedly; stopping the server")
            self.abort()
            self._on_failure(exc)

    def _answer_error(self, error: RequestError) -> None:
        """Answer a request the exchange never sees with ``error``."""
        self._counters.refuse(error.code.name)
        self._outbox.reserve().send(render_error(error))

    def _refusal(self, request: Request) -> ErrorCode | None:
        """Why access control refuses ``request`` here, if it does."""
        if type(request) is TransactionsRequest:
            if not self._access.may_transact(request.account_id, request.token):
                return ErrorCode.UNAUTHORIZED
        elif not self._access.may_create(on_admin_listener=self._admin, peer=self._peer):
            return ErrorCode.CREATE_FORBIDDEN
        return None

    def _refuse(self, error: RequestError) -> None:
        """Answer a request that could not be framed; close if the stream is lost."""
        self._counters.refuse(error.code.name)
        reply = self._outbox.reserve()
        data = render_error(error)
        if error.fatal:
            self._closing = True
            reply.send_last(data)
        else:
            reply.send(data)

    def _write(self, reply: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(reply)
            if self._reading_paused and not self._writing_paused:
                self._loop.call_soon(self._update_reading)
            if transport.get_write_buffer_size() > self._config.max_unsent_bytes:
                log.warning(
                    "client not reading (%d bytes unsent); dropping it",
                    transport.get_write_buffer_size(),
                )
                self.abort()

    # timeouts

    def _note_progress(self) -> None:
        now = self._loop.time()
        if not self._decoder.in_request:
            self._request_started = None
            self._idle_since = now
            self._registry.touch(self)
        elif self._request_started is None:
            self._request_started = now
            self._schedule_timer(now + self._config.body_timeout)

    def _deadline(self) -> float:
        if self._request_started is not None:
            return self._request_started + self._config.body_timeout
        return self._idle_since + self._config.idle_timeout

    def _schedule_timer(self, when: float) -> None:
        if self._timer is not None:
            if self._timer.when() <= when:
                return
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closing:
            return
        now = self._loop.time()
        if not self._outbox.is_empty:  # the client is waiting for us, not idle
            self._schedule_timer(now + self._config.body_timeout)
        elif now < self._deadline():
            self._schedule_timer(self._deadline())
        elif self._request_started is not None:
            log.info("request not received within %ss; closing", self._config.body_timeout)
            self._refuse(RequestError(ErrorCode.REQUEST_TIMEOUT, fatal=True))
        else:
            self.close()
