"""One client connection: the asyncio shell around its session.

The wire rules (framing, parsing, the pipelining cap, replies in request
order, rendering, when to close) live in the sans-I/O ``Session``
(``protocol/session.py``). This shell owns what needs the event loop: the
transport, the timers, flow control, the rate limit's clock and TLS. One
timer per connection enforces two limits: the idle timeout between requests
(the connection is closed) and the total deadline for receiving one request
(answered with an error, then closed). The connection stops reading while
unsent replies pile up (a client that does not read) or while the session
has too many requests in progress (a client that pipelines without bound),
so what one client costs the server stays bounded; past
``max_unsent_bytes`` it is dropped. A close (idle timeout, fatal error, end
of stream) sends what is still unsent, but a client that takes none of it
for ``closing_stall`` seconds is reset, so it cannot keep its buffers and
socket by not reading.

With TLS the connection speaks it itself (``TlsSession``, ``tls.py``) on
the plain accepted socket, rather than through the loop, so the socket is
counted and evictable from its accept, its handshake has its own deadline,
and however the handshake ends the connection either serves or is gone.
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

from bourse.core.commands import Request
from bourse.protocol.reader import ReaderLimits
from bourse.protocol.session import (
    ApplyRequest,
    Ending,
    ReplySlot,
    RequestRefused,
    Session,
    SessionLimits,
    SessionSignal,
)
from bourse.server.access import AccessPolicy
from bourse.server.admission import ConnectionAdmission
from bourse.server.config import ServerConfig
from bourse.server.metrics import FrontendCounters
from bourse.server.registry import ConnectionRegistry
from bourse.server.tls import TlsSession

log = logging.getLogger(__name__)

#: SO_LINGER on with a zero timeout: close() sends a reset at once.
RESET_ON_CLOSE = struct.pack("ii", 1, 0)

#: Hands a parsed request to the exchange (in this process or through a
#: gateway's link to the engine); the reply slot is resolved later.
Submit = Callable[[Request, ReplySlot], None]


def session_limits(config: ServerConfig, access: AccessPolicy) -> SessionLimits:
    """The session's bounds under ``config``."""
    return SessionLimits(
        max_request_size=config.max_request_size,
        max_pipelined=config.max_pipelined,
        reader=ReaderLimits(max_children=config.max_commands, accept_token=access.asks_tokens),
    )


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
        self._admission = ConnectionAdmission(config, access, admin=admin)
        self._config = config
        self._registry = registry
        self._on_failure = on_failure
        self._session = Session(session_limits(config, access), self._admission, self._transmit)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._idle_since = self._loop.time()
        self._request_started: float | None = None
        self._closed = False
        self._writing_paused = False
        self._reading_paused = False
        self._counted_open = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Accepted: counted from now on (at the cap, another connection
        makes room), then served, or first taken through the TLS handshake."""
        transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass it
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._admission.peer = peer[0] if isinstance(peer, tuple) else None
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
        self._session.receive_data(plaintext)
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
        self._session.receive_eof()
        self._answer_ready_requests()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()

    def _forget(self) -> None:
        """The connection is gone: stop its timer, uncount it (once)."""
        self._end_session()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._counted_open:
            self._counters.open -= 1
            self._counted_open = False
        self._registry.discard(self)

    def _end_session(self) -> None:
        """From now on nothing more is taken from the client or sent to it."""
        self._closed = True
        self._session.connection_closed()

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._update_reading()

    def _update_reading(self) -> None:
        """Read only while the client reads its replies and the session has
        fewer than ``max_pipelined`` requests in progress."""
        transport = self._transport
        if transport is None or self._closed or not self._session.taking_requests:
            return
        hold = self._writing_paused or self._session.pipeline_full
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
        return self._session.receiving or self._session.owes_replies

    def close(self) -> None:
        """Close after the replies already written have been sent, or reset
        if the client stops taking them (``closing_stall``)."""
        self._end_session()
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._tls is not None and self._tls.established:
            self._tls.close_notify()
        transport.close()
        self._watch_closing(transport, None)

    def _watch_closing(self, transport: asyncio.Transport, unsent_before: int | None) -> None:
        """Reset a closing connection whose client took none of its unsent
        bytes since the last look; look again ``closing_stall`` later."""
        unsent = transport.get_write_buffer_size()
        if unsent == 0:
            return  # the transport finishes closing by itself
        stall = self._config.closing_stall
        if unsent_before is not None and unsent >= unsent_before:
            log.info("client took none of %d unsent bytes in %ss; resetting", unsent, stall)
            self.abort()
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(stall, self._watch_closing, transport, unsent)

    def abort(self) -> None:
        """Drop the connection at once: a reset, discarding whatever the
        kernel still holds for the client (a client that does not read
        would otherwise keep it, and never see the connection end)."""
        self._end_session()
        if self._transport is not None:
            sock = self._transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
            self._transport.abort()

    # requests

    def _answer_ready_requests(self) -> None:
        """Hand out every request the session has ready, within its cap."""
        session = self._session
        while not self._closed:
            event = session.next_event()
            if isinstance(event, ApplyRequest):
                self._apply(event)
            elif isinstance(event, RequestRefused):
                self._counters.refuse(event.error.code.name)
                self._transmit()
            elif event is SessionSignal.NO_MORE_REQUESTS:
                self._transmit()  # the close, once what is owed has left
                return
            else:  # NEED_DATA or PIPELINE_FULL
                self._note_progress()
                if session.pipeline_full:
                    self._update_reading()
                return

    def _apply(self, event: ApplyRequest) -> None:
        try:
            self._submit_request(event.request, event.reply)
        except Exception as exc:  # a bug: the exchange state can no longer be trusted
            log.exception("request failed unexpectedly; stopping the server")
            self.abort()
            self._on_failure(exc)

    def _transmit(self) -> None:
        """Send the replies ready to leave, in order; then close or drop the
        connection if the session says so. Also called by the session when a
        reply resolved later unblocks replies."""
        session = self._session
        while data := session.data_to_send():
            self._write(data)
        if self._closed:
            return
        ending = session.ending
        if ending is Ending.CLOSE:
            self.close()
        elif ending is Ending.ABORT:
            self.abort()

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
        if not self._session.receiving:
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
        session = self._session
        if self._closed or not session.taking_requests:
            return
        now = self._loop.time()
        if session.owes_replies:  # the client is waiting for us, not idle
            self._schedule_timer(now + self._config.body_timeout)
        elif now < self._deadline():
            self._schedule_timer(self._deadline())
        elif self._request_started is not None:
            log.info("request not received within %ss; closing", self._config.body_timeout)
            self._counters.refuse(session.request_timed_out().error.code.name)
            self._transmit()
        else:
            self.close()
