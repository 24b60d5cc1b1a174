"""TLS spoken by a connection itself, over the plain socket it was accepted on.

Why not the event loop's TLS: with ``create_server(ssl=...)`` neither
asyncio nor uvloop tells the protocol anything about a handshake that
fails or times out (``connection_made`` comes only after it succeeds,
``connection_lost`` only after ``connection_made``), and the socket cannot
be reached until then, so sockets in the handshake could be neither
counted nor evicted. ``loop.start_tls`` from ``connection_made`` does not
help either: uvloop starts reading as ``connection_made`` returns, so the
client's first handshake bytes would reach the protocol before the TLS
layer. So an ``ssl.SSLObject`` sits between two memory buffers, and the
connection (``connection.py``) drives it with the bytes it receives: the
socket is counted and evictable from its accept, and its handshake has
its own deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

#: Plaintext bytes taken from the TLS layer at a time.
TLS_READ_SIZE = 256 * 1024


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
