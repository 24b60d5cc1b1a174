"""The server process: database, exchange, listening socket, clean stop.

``run`` starts the database (the embedded PostgreSQL unless a URL is
given), loads the exchange from it, then serves on the configured address
until SIGTERM or SIGINT. Shutdown stops accepting at once, lets requests
being received finish within a grace period, waits for every applied
request to be committed and answered, then closes the connections and the
database. An unexpected exception while applying a request means the
exchange state can no longer be trusted: the server stops and ``run``
returns a non-zero exit status (recovery from the database happens at the
next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bourse.server.config import ServerConfig
from bourse.server.connection import ExchangeConnection
from bourse.server.service import ExchangeService
from bourse.store.embedded import EmbeddedPostgres
from bourse.store.store import Store

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
        self.service.halt()
        self._stop.set()

    def _committer_stopped(self, task: asyncio.Task[None]) -> None:
        """The committer only ends by cancellation; anything else is a bug."""
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("the committer failed; stopping the server", exc_info=exc)
            self.fail(exc)

    def _new_connection(self) -> ExchangeConnection:
        return ExchangeConnection(self.service, self.config, self.connections, self.fail)

    async def serve(self) -> int:
        """Serve until asked to stop; the process exit status."""
        loop = asyncio.get_running_loop()
        committer = asyncio.create_task(self.service.run(), name="committer")
        committer.add_done_callback(self._committer_stopped)
        reporter = asyncio.create_task(self._report_stats(), name="stats")
        server = await loop.create_server(
            self._new_connection,
            self.config.host,
            self.config.port,
            reuse_address=True,
            backlog=self.config.listen_backlog,
        )
        for sock in server.sockets:
            host, port = sock.getsockname()[:2]
            log.info("bourse listening on %s:%s", host, port)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        await self._stop.wait()
        log.info("shutting down")
        server.close()
        await self._finish_connections()
        for task in (committer, reporter):
            task.cancel()
        return EXIT_FAILURE if self.failure is not None else EXIT_OK

    async def _finish_connections(self) -> None:
        """Let busy connections finish within the grace period, then close all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_grace
        while loop.time() < deadline and self.failure is None:
            for connection in list(self.connections):
                if not connection.is_busy:
                    connection.close()
            if not self.connections:
                break
            await asyncio.sleep(0.05)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.service.drain(), max(0.0, deadline - loop.time()))
        for connection in list(self.connections):
            connection.abort()

    async def _report_stats(self) -> None:
        while True:
            await asyncio.sleep(self.config.stats_interval)
            line = self.service.stats.report()
            if line is not None:
                log.info("batches: %s", line)


async def _serve(config: ServerConfig, database: Database) -> int:
    store = Store(database.url, revive=database.revive)
    try:
        service = ExchangeService(store, commit_timeout=config.commit_timeout)
        await service.start()
        return await ExchangeServer(config, service).serve()
    finally:
        await store.close()


@dataclass(frozen=True, slots=True)
class Database:
    """Where the exchange stores its state, and how to restart it if it
    is ours (the embedded server)."""

    url: str
    revive: Callable[[], object] | None = None


@contextlib.contextmanager
def open_database(configured: str | None, data_dir: Path) -> Iterator[Database]:
    """The configured database, or the embedded server in ``data_dir``,
    started for the duration and stopped afterwards."""
    if configured is not None:
        yield Database(configured)
        return
    embedded = EmbeddedPostgres(data_dir)
    try:
        url = embedded.start()
        log.info("embedded PostgreSQL ready in %s", data_dir)
        yield Database(url, embedded.revive)
    finally:
        embedded.stop()


def run(config: ServerConfig) -> int:
    """Run the server in this process until it stops; its exit status."""
    import uvloop  # noqa: PLC0415 - loaded only when serving

    with open_database(config.database_url, config.data_dir) as database:
        return uvloop.run(_serve(config, database))
