"""``bourse health``: is an exchange up and able to serve?

It is the container's health check, so it asks the exchange itself rather
than a side port: one connection, one empty ``<create>`` (it changes
nothing), and the server is healthy only if it answers ``<results>``
without an ``<error>``. A server that is still loading its state, or that
lost its database, answers "Exchange unavailable" and counts as unhealthy.
"""

from __future__ import annotations

import socket

from bourse.bench.xml import frame

PROBE = frame(b"<create/>")
REPLY_END = b"</results>"
LARGEST_REPLY = 64 * 1024


def probe(host: str, port: int, timeout: float) -> str | None:
    """None if the server answered the probe cleanly, else what went wrong."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.sendall(PROBE)
            reply = _read_reply(connection)
    except OSError as exc:
        return f"no answer from {host}:{port}: {exc}"
    if not reply.endswith(REPLY_END):
        return f"unexpected reply: {reply[:200]!r}"
    if b"<error" in reply:
        return f"server refused the probe: {reply[:200]!r}"
    return None


def _read_reply(connection: socket.socket) -> bytes:
    """Everything up to the end of one ``<results>`` element, or to EOF."""
    received = bytearray()
    while len(received) < LARGEST_REPLY:
        chunk = connection.recv(4096)
        if not chunk:
            break
        received += chunk
        if received.rstrip().endswith(REPLY_END):
            break
    return bytes(received).strip()
