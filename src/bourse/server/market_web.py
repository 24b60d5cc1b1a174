"""Where the web view and market data listen, in either process shape.

The HTTP socket is bound and listening in the engine process (so ``0``
resolves to one port, said once in the log) and, with gateways, inherited
by all of them: each accepts on it and serves from its own mirror of the
market, so fan-out grows with ``--workers``. With ``--workers 0`` the one
process serves it.
"""

from __future__ import annotations

import logging
import socket

from bourse.server.access import AccessPolicy
from bourse.server.binding import bind_address
from bourse.server.config import ServerConfig
from bourse.server.feed import MarketFeed

log = logging.getLogger(__name__)


def bind_http(config: ServerConfig) -> socket.socket | None:
    """The listening HTTP socket (None with ``--http-port off``); logs its URL."""
    if config.http_port is None:
        return None
    host = config.http_host or config.host
    bound = bind_address(host, config.http_port, shared=True, backlog=config.listen_backlog)
    address, port = bound.getsockname()[:2]
    if address in {"0.0.0.0", "::"}:  # every interface: this machine's own name opens it
        address = "localhost"
    shown = f"[{address}]" if ":" in address else address
    log.info("web view on http://%s:%s/", shown, port)
    return bound


def market_feed(config: ServerConfig) -> MarketFeed:
    """An empty market feed for this process, with the server's access rules
    (the private channel asks for tokens exactly when the XML port does)."""
    return MarketFeed(config, AccessPolicy.of(config))
