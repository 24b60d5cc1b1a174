"""The wire rules of one connection, without I/O: bytes in, events out,
outcomes in, bytes out.

Why a session apart from the socket: what a connection owes its client
(replies in request order, however the exchange resolves them; an error in
the place of a request it cannot frame, parse or admit; the close after a
fatal error or the client's end of stream, once what is owed has left; a
drop when a reply's outcome is unknown; at most ``max_pipelined`` requests
in progress) is a set of rules about byte streams, and rules about byte
streams can be tested whole, byte by byte and fuzzed only when no socket,
event loop or clock is in the way. So, in the manner of h11's
``Connection``, the session takes bytes (``receive_data``,
``receive_eof``), hands back one event per request (``next_event``: a
request to apply with the reply slot reserved for it, or a request refused
here), takes each request's outcome through its slot (``release``,
``refuse``, ``drop``: the ``Pending`` the exchange resolves), and hands back
the bytes to send (``data_to_send``) and what to do with the connection
then (``ending``). The caller owns the transport, the timers and flow
control; rate limits and access control come in as a small
``RequestPolicy``, so the session itself never reads a clock.

Replies are rendered only when they are about to leave: a resolved reply
waiting behind an earlier one holds its compact results, not their XML, and
a connection that is closed or dropped renders nothing more.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bourse.core.commands import Request
from bourse.core.errors import ErrorCode
from bourse.core.results import Result
from bourse.protocol.events import END_OF_STREAM, Frame, RequestError
from bourse.protocol.framing import DEFAULT_MAX_REQUEST_SIZE, FrameDecoder
from bourse.protocol.reader import DEFAULT_LIMITS, ReaderLimits, read_request
from bourse.protocol.render import render_error, render_results

#: Requests one connection may have in progress unless told otherwise.
DEFAULT_MAX_PIPELINED = 256


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """What one connection may ask of the server at once."""

    #: Largest request accepted, in bytes of XML.
    max_request_size: int = DEFAULT_MAX_REQUEST_SIZE
    #: Requests received and not yet answered before the session stops
    #: taking more (``PIPELINE_FULL``) until replies leave.
    max_pipelined: int = DEFAULT_MAX_PIPELINED
    #: Bounds on the XML of one request.
    reader: ReaderLimits = DEFAULT_LIMITS


class RequestPolicy(Protocol):
    """Decisions the session asks for but does not make (rate limits, access
    control): each returns why a request is refused, or None to go on."""

    def refusal_before_parsing(self) -> ErrorCode | None:
        """Asked for each framed request before it is parsed."""

    def refusal_of(self, request: Request) -> ErrorCode | None:
        """Asked for each parsed request before it is handed out to apply."""


class AdmitEverything:
    """The policy with no limits and no access control."""

    __slots__ = ()

    def refusal_before_parsing(self) -> ErrorCode | None:
        return None

    def refusal_of(self, request: Request) -> ErrorCode | None:
        return None


DEFAULT_SESSION_LIMITS = SessionLimits()
ADMIT_EVERYTHING = AdmitEverything()


class SessionSignal(enum.Enum):
    """What ``next_event`` says when it has no request to hand out."""

    NEED_DATA = "every request received has been handed out: feed more bytes"
    PIPELINE_FULL = "max_pipelined requests are in progress: ask again once replies leave"
    NO_MORE_REQUESTS = "the connection takes no more requests (end of stream, fatal error, closed)"


class Ending(enum.Enum):
    """What becomes of the connection once ``data_to_send`` has nothing more."""

    OPEN = "keep serving"
    CLOSE = "close once the bytes handed out have been sent"
    ABORT = "drop at once: a reply's outcome is unknown"


class _Dropped(enum.Enum):
    """The outcome of a request whose effects may or may not be committed."""

    DROPPED = "the request's outcome is unknown"


_DROPPED = _Dropped.DROPPED

Outcome = Sequence[Result] | RequestError | _Dropped


class ReplySlot:
    """The place of one request's reply in its connection's order; the
    exchange resolves it once (a ``Pending``, see ``server/service.py``)."""

    __slots__ = ("_session", "outcome")

    def __init__(self, session: Session, outcome: Outcome | None = None) -> None:
        self._session = session
        #: None until resolved.
        self.outcome = outcome

    def release(self, results: Sequence[Result]) -> None:
        """The request's effects are committed: answer with ``results``."""
        self._session._resolve(self, results)

    def refuse(self, code: ErrorCode) -> None:
        """The request had no effect: answer with this error."""
        self._session._resolve(self, RequestError(code))

    def drop(self) -> None:
        """The outcome is unknown: drop the connection when this reply's
        turn comes, without an answer."""
        self._session._resolve(self, _DROPPED)


@dataclass(frozen=True, slots=True)
class ApplyRequest:
    """A request for the exchange; its outcome goes to ``reply``."""

    request: Request
    reply: ReplySlot


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """A request answered here with ``error``, in its place in the reply
    order; when ``error.fatal`` the connection closes after it."""

    error: RequestError


SessionEvent = ApplyRequest | RequestRefused | SessionSignal


def _nothing() -> None:
    """The default ``on_reply_ready``: a caller that asks ``data_to_send``
    after every resolution needs no word."""


class Session:
    """One connection's requests and replies, as a state machine on bytes.

    Feed it with ``receive_data`` and ``receive_eof``; call ``next_event``
    until it returns a ``SessionSignal``; after each event, and whenever
    ``on_reply_ready`` is called (a slot resolved later made replies ready),
    call ``data_to_send`` until it returns ``b""``, send what it returned,
    then look at ``ending``. Tell it ``connection_closed`` when the
    connection goes for any other reason.
    """

    __slots__ = (
        "_close_when_sent",
        "_decoder",
        "_done",
        "_ending",
        "_eof",
        "_limits",
        "_on_reply_ready",
        "_policy",
        "_ready",
        "_taking_requests",
        "_waiting",
    )

    def __init__(
        self,
        limits: SessionLimits = DEFAULT_SESSION_LIMITS,
        policy: RequestPolicy = ADMIT_EVERYTHING,
        on_reply_ready: Callable[[], None] = _nothing,
    ) -> None:
        self._limits = limits
        self._policy = policy
        self._on_reply_ready = on_reply_ready
        self._decoder = FrameDecoder(limits.max_request_size)
        #: Settled replies at the front, ready to leave, oldest first.
        self._ready: deque[ReplySlot] = deque()
        #: The replies behind them, the first one not resolved yet.
        self._waiting: deque[ReplySlot] = deque()
        self._taking_requests = True
        self._eof = False
        #: Close once every reply owed has left (end of stream, fatal error).
        self._close_when_sent = False
        #: Nothing more is rendered or handed out.
        self._done = False
        self._ending = Ending.OPEN

    # bytes in

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client (ignored once no more requests are taken)."""
        if self._taking_requests and not self._eof:
            self._decoder.feed(data)

    def receive_eof(self) -> None:
        """The client will send nothing more: its requests are answered,
        then the connection closes."""
        self._eof = True
        self._decoder.feed_eof()

    # events out

    def next_event(self) -> SessionEvent:
        """The next request to apply or refused here, or why there is none."""
        if not self._taking_requests:
            return SessionSignal.NO_MORE_REQUESTS
        if len(self._waiting) >= self._limits.max_pipelined:
            return SessionSignal.PIPELINE_FULL
        event = self._decoder.next_event()
        if isinstance(event, Frame):
            return self._read(event.body)
        if isinstance(event, RequestError):
            return self._refuse(event)
        if event is END_OF_STREAM:
            self._close_after_replies()
            return SessionSignal.NO_MORE_REQUESTS
        return SessionSignal.NEED_DATA

    def request_timed_out(self) -> RequestRefused:
        """The request being received took too long: it is refused, and the
        connection closes after its error (call while requests are taken)."""
        return self._refuse(RequestError(ErrorCode.REQUEST_TIMEOUT, fatal=True))

    def _read(self, body: bytes) -> ApplyRequest | RequestRefused:
        """Parse a framed request and hand it out, unless it is refused."""
        policy = self._policy
        code = policy.refusal_before_parsing()
        if code is not None:
            return self._refuse(RequestError(code))
        request = read_request(body, self._limits.reader)
        if isinstance(request, RequestError):
            return self._refuse(request)
        code = policy.refusal_of(request)
        if code is not None:
            return self._refuse(RequestError(code))
        reply = ReplySlot(self)
        self._waiting.append(reply)
        return ApplyRequest(request, reply)

    def _refuse(self, error: RequestError) -> RequestRefused:
        """Queue ``error`` as a request's reply; after a fatal one, take no
        more requests and close once it has left."""
        reply = ReplySlot(self, error)
        (self._waiting if self._waiting else self._ready).append(reply)
        if error.fatal:
            self._close_after_replies()
        return RequestRefused(error)

    def _close_after_replies(self) -> None:
        self._taking_requests = False
        self._close_when_sent = True
        self._close_if_all_sent()

    # outcomes in

    def _resolve(self, reply: ReplySlot, outcome: Outcome) -> None:
        """A slot's outcome (through ``ReplySlot``): replies it unblocks
        become ready to leave."""
        if self._done:
            return
        reply.outcome = outcome
        waiting = self._waiting
        if waiting and waiting[0] is reply:
            ready = self._ready
            while waiting and waiting[0].outcome is not None:
                ready.append(waiting.popleft())
            self._on_reply_ready()

    # bytes out

    def data_to_send(self) -> bytes:
        """The next reply to send, rendered now; ``b""`` when none is ready
        (then see ``ending``)."""
        if self._done or not self._ready:
            return b""
        outcome = self._ready.popleft().outcome
        if isinstance(outcome, _Dropped):
            self._end(Ending.ABORT)
            return b""
        if isinstance(outcome, RequestError):
            data = render_error(outcome)
        else:
            assert outcome is not None  # only resolved replies are ready
            data = render_results(outcome)
        self._close_if_all_sent()
        return data

    @property
    def ending(self) -> Ending:
        """OPEN, or what to do once the bytes handed out are sent."""
        return self._ending

    def connection_closed(self) -> None:
        """The connection is closed or dropped by its owner: nothing more is
        taken, rendered or handed out, and late outcomes are ignored."""
        self._taking_requests = False
        self._done = True
        self._forget_replies()

    def _close_if_all_sent(self) -> None:
        if self._close_when_sent and not self._waiting and not self._ready:
            self._end(Ending.CLOSE)

    def _end(self, ending: Ending) -> None:
        self._ending = ending
        self._taking_requests = False
        self._done = True
        self._forget_replies()

    def _forget_replies(self) -> None:
        self._ready.clear()
        self._waiting.clear()

    # state, for the owner's timers, flow control and eviction

    @property
    def taking_requests(self) -> bool:
        """False once the end of stream or a fatal error was reached, or the
        connection ended: no more requests will be handed out."""
        return self._taking_requests

    @property
    def receiving(self) -> bool:
        """True while bytes of an unfinished request have arrived."""
        return self._decoder.in_request

    @property
    def owes_replies(self) -> bool:
        """True while a request received has not had its reply handed out."""
        return bool(self._waiting or self._ready)

    @property
    def pipeline_full(self) -> bool:
        """True while ``max_pipelined`` requests are in progress."""
        return len(self._waiting) >= self._limits.max_pipelined
