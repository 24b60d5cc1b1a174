"""The server: database, exchange, clients, and a clean stop.

``run`` starts the database (the embedded PostgreSQL unless a URL is
given; ``store/selection.py``), loads the exchange from it, then serves on
the configured address until SIGTERM or SIGINT, in one of two shapes:

- ``workers == 0``: one process accepts connections, parses, applies,
  commits and renders;
- ``workers == N``: this process is the engine (applies and commits) and
  N gateway processes accept on its address (``supervisor.py``).

Shutdown stops accepting at once, lets requests being received finish
within a grace period, waits for every applied request to be committed and
answered, then closes the connections and the database. An unexpected
exception while applying a request means the exchange state can no longer
be trusted: the server stops and ``run`` returns a non-zero exit status
(recovery from the database happens at the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import ssl

from bourse.server.access import read_token_file
from bourse.server.binding import bind_address
from bourse.server.config import ServerConfig
from bourse.server.frontend import Frontend, tls_context
from bourse.server.limits import AccountLimits
from bourse.server.market_web import bind_http, market_feed
from bourse.server.metrics import Metrics, serve_metrics
from bourse.server.publisher import MarketPublisher
from bourse.server.service import ExchangeService
from bourse.server.storage import Storage
from bourse.server.supervisor import Gateways
from bourse.server.web import start_web
from bourse.store.selection import Database, open_database
from bourse.store.store import Store

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1

#: Seconds beyond the grace period that stopping gateways may take.
GATEWAY_STOP_MARGIN = 5.0


class ExchangeServer:
    """The exchange service, whoever serves its clients, and the reason to stop."""

    def __init__(self, config: ServerConfig, service: ExchangeService) -> None:
        self.config = config
        self.service = service
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

    async def serve(self) -> int:
        """Serve until asked to stop; the process exit status."""
        loop = asyncio.get_running_loop()
        committer = asyncio.create_task(self.service.run(), name="committer")
        committer.add_done_callback(self._committer_stopped)
        reporter = asyncio.create_task(self._report_stats(), name="stats")
        replication = asyncio.create_task(self.service.watch_replication(), name="replication")
        tasks = [committer, reporter, replication]
        if self.config.leaderboard:
            standings = self.service.publisher.keep_standings(self.service.committed_exchange)
            tasks.append(asyncio.create_task(standings, name="standings"))
        if self.config.metrics_port is not None:
            server, port = serve_metrics(
                self.service.metrics,
                self.config.metrics_host,
                self.config.metrics_port,
                lambda: self.service.ready and self.failure is None,
            )
            log.info("metrics on http://%s:%s/metrics", self.config.metrics_host, port)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        try:
            if self.config.workers:
                await self._serve_with_gateways()
            else:
                await self._serve_in_process()
        finally:
            for task in tasks:
                task.cancel()
            if self.config.metrics_port is not None:
                server.shutdown()
        return EXIT_FAILURE if self.failure is not None else EXIT_OK

    async def _serve_in_process(self) -> None:
        config, submit = self.config, self.service.submit
        counters = self.service.metrics.local
        frontends = [Frontend(config, submit, self.fail, counters=counters)]
        if config.admin_port is not None:  # first: "listening" means all are ready
            frontends.insert(0, Frontend(config, submit, self.fail, admin=True, counters=counters))
        http = bind_http(config)
        web = None
        try:
            if http is not None:
                feed = market_feed(config)
                self.service.publisher.follow(feed)
                web = await start_web(feed, http, config)
            for frontend in frontends:
                for host, port in await frontend.listen():
                    log_listening(host, port, admin=frontend.admin)
            await self._stop.wait()
            log.info("shutting down")
            if web is not None:
                await web.close()
            await asyncio.gather(*(frontend.close(self.service.drain) for frontend in frontends))
        finally:
            if http is not None:
                http.close()

    async def _serve_with_gateways(self) -> None:
        config = self.config
        bound = bind_address(
            config.host,
            config.port,
            shared=config.accept == "shared",
            backlog=config.listen_backlog,
        )
        admin = (
            None
            if config.admin_port is None
            else bind_address(config.admin_host, config.admin_port, shared=False, backlog=0)
        )
        http = bind_http(config)
        gateways = Gateways(config, bound, admin, self.service, self.fail, http)
        try:
            await gateways.start()
            if admin is not None:
                log_listening(*admin.getsockname()[:2], admin=True)
            host, port = bound.getsockname()[:2]
            log.info("bourse listening on %s:%s (%d gateways)", host, port, config.workers)
            await self._stop.wait()
            log.info("shutting down")
            await gateways.stop(config.shutdown_grace + GATEWAY_STOP_MARGIN)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.service.drain(), config.shutdown_grace)
        finally:
            for held in (bound, admin, http):
                if held is not None:
                    held.close()

    async def _report_stats(self) -> None:
        while True:
            await asyncio.sleep(self.config.stats_interval)
            line = self.service.stats.report()
            if line is not None:
                log.info("batches: %s", line)


def log_listening(host: str, port: int, *, admin: bool) -> None:
    """The line that says where clients (or administrators) connect."""
    if admin:
        log.info("admin listener on %s:%s (<create> accepted here)", host, port)
    else:
        log.info("bourse listening on %s:%s", host, port)


def build_service(
    config: ServerConfig, store: Storage, metrics: Metrics | None = None
) -> ExchangeService:
    """The exchange service on ``store``, with the limits ``config`` sets."""
    return ExchangeService(
        store,
        metrics=metrics,
        commit_timeout=config.commit_timeout,
        recovery_timeout=config.recovery_timeout,
        account_limits=(
            AccountLimits(config.account_rate, config.account_burst)
            if config.account_rate > 0
            else None
        ),
        max_open_orders=config.max_open_orders or None,
        max_reply_fills=config.max_reply_fills or None,
        max_batch_rows=config.max_batch_rows,
        require_sync_standby=config.require_sync_standby,
        publisher=MarketPublisher(leaderboard=config.leaderboard),
    )


async def _serve(config: ServerConfig, database: Database) -> int:
    metrics = Metrics()
    store = Store(
        database.url,
        revive=database.revive,
        max_lag_rows=config.max_projection_lag,
        observe_lag=metrics.projection_lag_seconds.observe,
    )
    metrics.projection_backlog = lambda: store.projector.lag_rows
    try:
        service = build_service(config, store, metrics)
        await service.start()
        return await ExchangeServer(config, service).serve()
    finally:
        await store.close()


def configuration_problem(config: ServerConfig) -> str | None:
    """What makes ``config`` unusable (a token file or TLS files that
    cannot be read), said before anything starts; None if nothing."""
    try:
        if config.account_tokens is not None:
            read_token_file(config.account_tokens)
        tls_context(config)
    except (OSError, ValueError, ssl.SSLError) as exc:
        return str(exc)
    return None


def raise_open_file_limit() -> None:
    """Let this process (and the gateways it starts) open as many files as
    the hard limit allows: every connection is one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        log.debug("open-file limit raised from %d to %d", soft, hard)


def run(config: ServerConfig) -> int:
    """Run the server until it stops; its exit status."""
    import uvloop  # noqa: PLC0415 - loaded only when serving

    raise_open_file_limit()
    with open_database(config.database_url, config.data_dir) as database:
        return uvloop.run(_serve(config, database))
