"""Server settings, with the defaults a user gets from ``bourse serve``."""

from __future__ import annotations

from dataclasses import dataclass

from bourse.protocol.framing import DEFAULT_MAX_REQUEST_SIZE

DEFAULT_PORT = 12345


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How the server listens and how long it waits for clients."""

    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    #: Largest request accepted, in bytes of XML.
    max_request_size: int = DEFAULT_MAX_REQUEST_SIZE
    #: Seconds a connection may stay silent between requests.
    idle_timeout: float = 300.0
    #: Seconds from a request's first byte to its last.
    body_timeout: float = 30.0
    #: Seconds a shutdown waits for requests already being received.
    shutdown_grace: float = 5.0
    #: Bytes of unsent replies above which a connection stops being read.
    write_high_water: int = 1 << 20
