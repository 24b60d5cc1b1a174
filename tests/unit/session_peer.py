"""A driver for ``Session`` that plays the server's shell and the exchange,
with no socket: it feeds bytes, takes every event, settles reply slots when
told to, and keeps what the session hands out to send, next to the replies
the events say are owed, in order. With the framings and the ways to cut a
stream that the session's tests use (tests/unit/chunkers.py)."""

from __future__ import annotations

from bourse.core.commands import Request
from bourse.core.errors import ErrorCode
from bourse.core.results import AccountCreated
from bourse.protocol.events import RequestError
from bourse.protocol.render import render_error, render_results
from bourse.protocol.session import (
    ADMIT_EVERYTHING,
    DEFAULT_SESSION_LIMITS,
    ApplyRequest,
    ReplySlot,
    RequestPolicy,
    RequestRefused,
    Session,
    SessionLimits,
    SessionSignal,
)


def binary(body: bytes) -> bytes:
    return len(body).to_bytes(4, "little") + b"\n" + body


def answer(number: int) -> bytes:
    """The reply a ``Peer`` releases for its ``number``-th applied request."""
    return render_results([AccountCreated(str(number))])


def refusal(code: ErrorCode) -> bytes:
    return render_error(RequestError(code))


class Peer:
    """One connection's session, driven as ``server/connection.py`` does."""

    def __init__(
        self,
        limits: SessionLimits = DEFAULT_SESSION_LIMITS,
        policy: RequestPolicy = ADMIT_EVERYTHING,
        *,
        release_at_once: bool = False,
    ) -> None:
        self.session = Session(limits, policy, self._reply_ready)
        self.release_at_once = release_at_once
        #: Bytes the session handed out to send.
        self.sent = bytearray()
        #: Every reply the events so far make owed, in request order.
        self.owed: list[bytes] = []
        #: Requests handed out to apply, in order.
        self.requests: list[Request] = []
        #: Errors of requests refused by the session, in order.
        self.refusals: list[RequestError] = []
        #: Slots of applied requests not settled yet, by request number
        #: (from 1), with the place of their reply in ``owed``.
        self.unsettled: dict[int, tuple[ReplySlot, int]] = {}
        #: Times the session said a late settlement made replies ready.
        self.notifications = 0

    def send(self, *chunks: bytes) -> SessionSignal:
        """The client sends ``chunks``; every event is taken after each."""
        signal = SessionSignal.NEED_DATA
        for chunk in chunks:
            self.session.receive_data(chunk)
            signal = self.pump()
        return signal

    def end(self) -> SessionSignal:
        """The client's end of stream."""
        self.session.receive_eof()
        return self.pump()

    def pump(self) -> SessionSignal:
        """Take events until the session has none; send after each."""
        while True:
            event = self.session.next_event()
            if isinstance(event, ApplyRequest):
                self.requests.append(event.request)
                number = len(self.requests)
                self.unsettled[number] = (event.reply, len(self.owed))
                self.owed.append(answer(number))
                if self.release_at_once:
                    self.release(number)
            elif isinstance(event, RequestRefused):
                self.refusals.append(event.error)
                self.owed.append(render_error(event.error))
            else:
                return event
            self.flush()

    def release(self, number: int) -> None:
        """The exchange commits the ``number``-th request (from 1)."""
        slot, _ = self.unsettled.pop(number)
        slot.release([AccountCreated(str(number))])

    def refuse(self, number: int, code: ErrorCode) -> None:
        """The exchange refuses the ``number``-th request: its owed reply
        becomes that error."""
        slot, place = self.unsettled.pop(number)
        self.owed[place] = refusal(code)
        slot.refuse(code)

    def drop(self, number: int) -> int:
        """The ``number``-th request's outcome is unknown; the place of its
        reply in ``owed``."""
        slot, place = self.unsettled.pop(number)
        slot.drop()
        return place

    def flush(self) -> None:
        """Send what the session has ready, as the shell does."""
        while data := self.session.data_to_send():
            self.sent += data

    def _reply_ready(self) -> None:
        self.notifications += 1
        self.flush()
