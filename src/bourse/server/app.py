"""The single-process server: listen, serve connections, stop cleanly.

``run`` starts an event loop (uvloop when available), listens on the
configured address and serves until SIGTERM or SIGINT. Shutdown stops
accepting at once, closes idle connections after their replies are sent,
gives connections that are in the middle of sending a request a grace
period, then drops whatever is left. If a request fails with an unexpected
exception the exchange state can no longer be trusted: the server stops and
``run`` returns a non-zero exit status.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from bourse.core.engine import Engine
from bourse.server.config import ServerConfig
from bourse.server.connection import ExchangeConnection
from bourse.server.service import ExchangeService
from bourse.server.tuning import tune_garbage_collector

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1


class ExchangeServer:
    """Listening socket, live connections, and the reason to stop."""

    def __init__(self, config: ServerConfig, service: ExchangeService) -> None:
        self.config = config
        self.service = service
        self.connections: set[ExchangeConnection] = set()
        self._stop = asyncio.Event()
        self.failure: BaseException | None = None

    def request_stop(self) -> None:
        """Begin a graceful shutdown."""
        self._stop.set()

    def fail(self, exc: BaseException) -> None:
        """Stop because the exchange hit a bug."""
        self.failure = exc
        self._stop.set()

    def _new_connection(self) -> ExchangeConnection:
        return ExchangeConnection(self.service, self.config, self.connections, self.fail)

    async def serve(self) -> int:
        """Serve until asked to stop; the process exit status."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            self._new_connection, self.config.host, self.config.port, reuse_address=True
        )
        for sock in server.sockets:
            host, port = sock.getsockname()[:2]
            log.info("bourse listening on %s:%s", host, port)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        await self._stop.wait()
        log.info("shutting down")
        server.close()
        await self._close_connections()
        return EXIT_FAILURE if self.failure is not None else EXIT_OK

    async def _close_connections(self) -> None:
        for connection in list(self.connections):
            if not connection.is_receiving:
                connection.close()
        deadline = asyncio.get_running_loop().time() + self.config.shutdown_grace
        while self.connections and asyncio.get_running_loop().time() < deadline:
            for connection in list(self.connections):
                if not connection.is_receiving:
                    connection.close()
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection.abort()


async def _main(config: ServerConfig) -> int:
    engine = Engine()
    tune_garbage_collector()
    return await ExchangeServer(config, ExchangeService(engine)).serve()


def run(config: ServerConfig) -> int:
    """Run the server in this process until it stops; its exit status."""
    try:
        import uvloop  # noqa: PLC0415 - optional fast event loop
    except ImportError:
        return asyncio.run(_main(config))
    if sys.platform == "win32":
        return asyncio.run(_main(config))
    return uvloop.run(_main(config))
