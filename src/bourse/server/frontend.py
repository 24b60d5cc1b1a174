"""The client-facing side of a server process: accept, serve, wind down.

Used as is by the single-process server and by every gateway process. It
accepts connections on its own listening socket or on one inherited from
the engine process, hands each parsed request to ``submit``, and on
shutdown stops accepting, lets requests being received finish within the
grace period, waits for owed replies (``drain``), then closes what is left.
The listener itself speaks plain TCP: each connection does its own TLS, so
that it counts toward the connection cap from its accept
(``tls.py`` says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Awaitable, Callable

from bourse.server.access import AccessPolicy
from bourse.server.config import ServerConfig
from bourse.server.connection import ExchangeConnection, Submit
from bourse.server.metrics import FrontendCounters
from bourse.server.registry import ConnectionRegistry


def tls_context(config: ServerConfig) -> ssl.SSLContext | None:
    """The server side of TLS on the public port, if configured: TLS 1.2 or
    later, and client certificates required when a client CA is given."""
    if config.tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    if config.tls_client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(config.tls_client_ca)
    return context


class Frontend:
    """A listening socket and the live connections it accepted."""

    def __init__(
        self,
        config: ServerConfig,
        submit: Submit,
        on_failure: Callable[[BaseException], None],
        *,
        admin: bool = False,
        counters: FrontendCounters | None = None,
    ) -> None:
        self.config = config
        self.admin = admin
        self.counters = FrontendCounters() if counters is None else counters
        self._access = AccessPolicy.of(config)
        self.connections: ConnectionRegistry[ExchangeConnection] = ConnectionRegistry(
            config.max_connections
        )
        self._tls = None if admin else tls_context(config)
        self._submit = submit
        self._on_failure = on_failure
        self._server: asyncio.Server | None = None
        self.failed = False

    def _new_connection(self) -> ExchangeConnection:
        """A connection just accepted; it joins ``connections`` (making room
        at the cap) as soon as it has its socket."""
        self.counters.accepted += 1
        return ExchangeConnection(
            self._submit,
            self.config,
            self._access,
            self.connections,
            self._fail,
            admin=self.admin,
            counters=self.counters,
            tls=self._tls,
        )

    def _fail(self, exc: BaseException) -> None:
        self.failed = True
        self._on_failure(exc)

    async def listen(
        self, sock: socket.socket | None = None, *, reuse_port: bool = False
    ) -> list[tuple[str, int]]:
        """Accept on ``sock`` (already bound and listening), or bind the
        configured address (sharing it with ``SO_REUSEPORT`` if asked); the
        addresses listened on."""
        loop = asyncio.get_running_loop()
        config = self.config
        if sock is not None:
            self._server = await loop.create_server(
                self._new_connection, sock=sock, backlog=config.listen_backlog
            )
        else:
            host, port = (
                (config.admin_host, config.admin_port)
                if self.admin
                else (
                    config.host,
                    config.port,
                )
            )
            self._server = await loop.create_server(
                self._new_connection,
                host,
                port,
                reuse_address=True,
                reuse_port=reuse_port,
                backlog=config.listen_backlog,
            )
        return [sock.getsockname()[:2] for sock in self._server.sockets]

    async def close(self, drain: Callable[[], Awaitable[None]]) -> None:
        """Stop accepting; let busy connections finish within the grace
        period, wait for ``drain`` (every owed reply resolved), close all."""
        if self._server is not None:
            self._server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_grace
        while loop.time() < deadline and not self.failed:
            for connection in self.connections:
                if not connection.is_busy:
                    connection.close()
            if not self.connections:
                break
            await asyncio.sleep(0.05)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drain(), max(0.0, deadline - loop.time()))
        self.abort_all()

    def abort_all(self) -> None:
        """Drop every connection at once."""
        for connection in self.connections:
            connection.abort()
