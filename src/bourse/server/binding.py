"""Binding the server's listening sockets, for one process or many.

A socket is either shared (bound and listening here, inherited by every
gateway, which all accept on it) or only held (bound, not listening: it
keeps the port, ``0`` resolved, while each gateway listens on a socket of
its own with ``SO_REUSEPORT``).
"""

from __future__ import annotations

import socket


def bind_address(host: str, port: int, *, shared: bool, backlog: int) -> socket.socket:
    """A socket bound to ``host:port``. Shared, it listens and every gateway
    accepts on it; otherwise it only holds the port (a bound socket that
    does not listen receives no connections) while each gateway listens on
    a socket of its own with ``SO_REUSEPORT``."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    bound = socket.socket(family, kind, proto)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if not shared:
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    bound.bind(address)
    if shared:
        bound.listen(backlog)
    bound.setblocking(False)
    return bound
