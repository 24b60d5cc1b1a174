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
it is dropped. A close (idle timeout, fatal error, end of stream) sends
what is still unsent, but a client that takes none of it for
``CLOSING_STALL`` seconds is reset, so it cannot keep its buffers and
socket by not reading.

With TLS the connection speaks it itself (``TlsSession``: an
``ssl.SSLObject`` over memory buffers) on the plain accepted socket,
rather than through the loop. With ``create_server(ssl=...)`` neither
asyncio nor uvloop tells the protocol anything about a handshake that
fails or times out (``connection_made`` comes only after it succeeds,
``connection_lost`` only after ``connection_made``), and the socket cannot
be reached until then, so sockets in the handshake could be neither
counted nor evicted. ``loop.start_tls`` from ``connection_made`` does not
help either: uvloop starts reading as ``connection_made`` returns, so the
client's first handshake bytes would reach this protocol before the TLS
layer. Here the socket is counted and evictable from its accept, its
handshake has its own deadline, and however the handshake ends the
connection either serves or is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
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

#: Seconds a closing connection's client may take none of its unsent
#: replies before the connection is reset.
CLOSING_STALL = 5.0

#: Plaintext bytes taken from the TLS layer at a time.
TLS_READ_SIZE = 256 * 1024

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
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._counters = counters
        self._tls_context = tls
        self._tls: TlsSession | None = None
        self._serving = False
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
        """Accepted: counted from now on (at the cap, another connection
        makes room), then served, or first taken through the TLS handshake."""
        transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass it
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) else None
        transport.set_write_buffer_limits(high=self._config.write_high_water)
        self._counters.open += 1
        self._counted_open = True
        self._admit()
        if self._tls_context is None:
            self._start_serving()
        else:
            self._tls = TlsSession(self._tls_context, transport)
            self._timer = self._loop.call_later(
                self._config.tls_handshake_timeout, self._handshake_timed_out
            )

    def _admit(self) -> None:
        victim = self._registry.admit(self, handshaking=self._tls_context is not None)
        if victim is not None:
            log.info(
                "connection limit (%d) reached; closing the longest-idle connection "
                "or the oldest TLS handshake",
                self._config.max_connections,
            )
            victim.abort()

    def _start_serving(self) -> None:
        """Ready for requests: from now on the idle timeout runs."""
        if self._timer is not None:  # the handshake's deadline
            self._timer.cancel()
            self._timer = None
        self._serving = True
        self._idle_since = self._loop.time()
        self._schedule_timer(self._idle_since + self._config.idle_timeout)

    def _handshake_timed_out(self) -> None:
        self._timer = None
        log.debug("TLS handshake not done within %ss; dropping", self._config.tls_handshake_timeout)
        self.abort()

    def data_received(self, data: bytes) -> None:
        if self._tls is None:
            self._receive(data)
        else:
            self._receive_tls(self._tls, data)

    def _receive(self, plaintext: bytes) -> None:
        self._decoder.feed(plaintext)
        self._answer_ready_requests()

    def _receive_tls(self, tls: TlsSession, data: bytes) -> None:
        """Bytes of the TLS stream: handshake, then requests, maybe the end."""
        was_established = tls.established
        try:
            plaintext = tls.receive(data)
        except ssl.SSLError as exc:
            log.debug("TLS failed: %s", exc)
            self.close()  # after the alert, if TLS has one for the client
            return
        if tls.established and not was_established:
            self._registry.handshake_done(self)
            self._start_serving()
        if plaintext:
            self._receive(plaintext)
        if tls.ended:
            self.eof_received()

    def eof_received(self) -> bool:
        """The client stopped sending: answer what it sent, then close
        (keeping the transport open until the replies awaiting their
        commit have left). During a TLS handshake there is nothing to
        answer: the transport closes."""
        if not self._serving:
            return False
        self._decoder.feed_eof()
        self._answer_ready_requests()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()

    def _forget(self) -> None:
        """The connection is gone: stop its timer, uncount it (once)."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
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
        """Close after the replies already written have been sent, or reset
        if the client stops taking them (``CLOSING_STALL``)."""
        self._closing = True
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._tls is not None and self._tls.established:
            self._tls.close_notify()
        transport.close()
        self._watch_closing(transport, None)

    def _watch_closing(self, transport: asyncio.Transport, unsent_before: int | None) -> None:
        """Reset a closing connection whose client took none of its unsent
        bytes since the last look; look again ``CLOSING_STALL`` later."""
        unsent = transport.get_write_buffer_size()
        if unsent == 0:
            return  # the transport finishes closing by itself
        if unsent_before is not None and unsent >= unsent_before:
            log.info("client took none of %d unsent bytes in %ss; resetting", unsent, CLOSING_STALL)
            self.abort()
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(CLOSING_STALL, self._watch_closing, transport, unsent)

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
        elif request.commands and not self._access.may_create(
            on_admin_listener=self._admin, peer=self._peer
        ):  # an empty <create> creates nothing: anyone may send it (access.py)
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
            if self._tls is None:
                transport.write(reply)
            else:
                self._tls.send(reply)
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


class TlsSession:
    """TLS over a plain transport, driven by the connection: an
    ``ssl.SSLObject`` between two memory buffers (``SSLContext.wrap_bio``).
    Ciphertext goes straight to the transport, so its write buffer (what
    flow control and the unsent-bytes cap look at) is what the client has
    not taken."""

    __slots__ = ("_incoming", "_outgoing", "_tls", "_transport", "ended", "established")

    def __init__(self, context: ssl.SSLContext, transport: asyncio.Transport) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._transport = transport
        #: The handshake is done.
        self.established = False
        #: The client closed its side of the session (close_notify).
        self.ended = False

    def receive(self, data: bytes) -> bytes:
        """The plaintext that ``data`` completes, if any. Raises
        ``ssl.SSLError`` when the handshake fails or a record is bad (any
        alert for the client is sent first)."""
        self._incoming.write(data)
        try:
            if not self.established:
                if not self._handshake():
                    return b""
                self.established = True
            return self._plaintext()
        finally:
            self._flush()  # handshake messages, alerts, session tickets

    def _handshake(self) -> bool:
        """Take the handshake as far as the bytes received allow; True when done."""
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    def _plaintext(self) -> bytes:
        chunks = []
        try:
            while chunk := self._tls.read(TLS_READ_SIZE):
                chunks.append(chunk)
            self.ended = True  # an empty read: the client's close_notify
        except ssl.SSLWantReadError:
            pass  # all that has arrived is read
        except ssl.SSLZeroReturnError:
            self.ended = True
        return b"".join(chunks)

    def send(self, plaintext: bytes) -> None:
        self._tls.write(plaintext)
        self._flush()

    def close_notify(self) -> None:
        """End the session cleanly: the client sees an orderly end, not a cut."""
        with contextlib.suppress(ssl.SSLError):  # it waits for the client's: no matter
            self._tls.unwrap()
        self._flush()

    def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            self._transport.write(data)
