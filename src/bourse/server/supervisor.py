"""The engine process's side of ``--workers N``: gateway processes.

The engine process binds the server's address, starts N gateway processes
that accept on it (each on its own ``SO_REUSEPORT`` socket, or all on the
engine's one inherited socket), and keeps a ``GatewayLink`` to each: requests
arrive already parsed, are applied in the order they arrive, and their
outcomes go back under the gateway's tokens once their batch has committed
(the engine never parses or renders XML). A gateway that dies is started
again (its clients' connections died with it); stopping sends SIGTERM to
every gateway and waits for them to finish what they owe.

Gateways are watched without holding a thread: each one's pidfd
(``os.pidfd_open``, Linux 5.3+) becomes readable when it exits, and the
event loop reaps it then (``add_reader``). Waiting in a thread per gateway
(``asyncio.to_thread(process.wait)``) pinned the default executor, which
has ``min(32, cores + 4)`` threads: with that many gateways, anything else
the engine runs in that pool (and some gateways' own watches) waited for
ever. A SIGCHLD handler is not an option under uvloop, which refuses one
(libuv owns that signal); asyncio's subprocesses hold no thread under
uvloop but do under the standard loop on Python 3.11 (its default child
watcher waits in a thread per child). A pidfd works the same on both.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from bourse.core.errors import ErrorCode
from bourse.core.market import MarketSnapshot, MarketUpdate, Standing
from bourse.core.results import Result
from bourse.server import ipc
from bourse.server.config import ServerConfig
from bourse.server.gateway import GatewaySockets, gateway_command
from bourse.server.market_codec import pack_update
from bourse.server.service import ExchangeService

log = logging.getLogger(__name__)

#: Seconds the gateways may take to start accepting connections.
START_TIMEOUT = 60.0


class RemoteReply:
    """A ``Pending`` whose outcome goes back to a gateway under a token."""

    __slots__ = ("_link", "_token")

    def __init__(self, link: GatewayLink, token: int) -> None:
        self._link = link
        self._token = token

    def release(self, results: Sequence[Result]) -> None:
        self._link.send((self._token, results))

    def refuse(self, code: ErrorCode) -> None:
        self._link.send((self._token, code))

    def drop(self) -> None:
        self._link.send((self._token, None))


class GatewayProcess:
    """A gateway's process and its exit status to come, watched by the
    event loop through a pidfd rather than by a waiting thread."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self._loop = asyncio.get_running_loop()
        self._pidfd = os.pidfd_open(process.pid)
        #: The exit status, set once the process has exited and been reaped.
        self.exited: asyncio.Future[int] = self._loop.create_future()
        self._loop.add_reader(self._pidfd, self._reap)

    @property
    def pid(self) -> int:
        return self._process.pid

    def send_signal(self, signum: int) -> None:
        """Signal the process unless it has been reaped (until then its pid
        cannot name another process)."""
        if not self.exited.done():
            os.kill(self._process.pid, signum)

    def _reap(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self.exited.set_result(self._process.wait())  # it has exited: returns at once


class GatewayLink(ipc.MessageStream):
    """The engine's end of one gateway's link."""

    def __init__(
        self, index: int, service: ExchangeService, on_failure: Callable[[BaseException], None]
    ) -> None:
        super().__init__()
        self._index = index
        self._service = service
        self._on_failure = on_failure
        self.ready = asyncio.Event()

    def items_received(self, items: list[Any]) -> None:
        submit = self._service.submit
        try:
            for item in items:
                token, request = item
                if token > 0:
                    submit(request, RemoteReply(self, token))
                elif token == ipc.STATS:
                    self._service.metrics.gateway_report(self._index, request)
                elif item == ipc.READY:
                    self.ready.set()
        except Exception as exc:  # a bug: the exchange state can no longer be trusted
            log.exception("request failed unexpectedly; stopping the server")
            self._on_failure(exc)

    def undeliverable(self, item: Any) -> Any | None:
        """An outcome too large for the link: its effects are committed but
        cannot reach the client, so the client is told nothing (dropped),
        as when an outcome is unknown."""
        token, _ = item
        log.error(
            "the reply to a request of gateway %d is too large to send; dropping its client",
            self._index,
        )
        return (token, None)

    def link_lost(self) -> None:
        """The supervisor sees the process exit; keep its counters, stop
        waiting for it."""
        self._service.metrics.gateway_gone(self._index)
        self.ready.set()


def _pickled(value: object) -> bytes:
    return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


class Gateways:
    """N gateway processes around this process's engine."""

    def __init__(
        self,
        config: ServerConfig,
        bound: socket.socket,
        admin: socket.socket | None,
        service: ExchangeService,
        on_failure: Callable[[BaseException], None],
        http: socket.socket | None = None,
    ) -> None:
        self._config = config
        self._bound = bound
        self._http = http
        host, port = bound.getsockname()[:2]
        share = -(-config.max_connections // config.workers)  # ceiling division
        admin_port = None if admin is None else admin.getsockname()[1]
        self._gateway_config = replace(
            config, host=host, port=port, max_connections=share, admin_port=admin_port
        )
        self._service = service
        self._on_failure = on_failure
        self._processes: dict[int, GatewayProcess] = {}
        self._links: dict[int, GatewayLink] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        """The gateway processes running now."""
        return [process.pid for process in self._processes.values()]

    async def start(self) -> None:
        """Start every gateway; return once all accept connections."""
        if self._http is not None:
            self._service.publisher.follow(self)
        links = [await self._spawn(index) for index in range(self._config.workers)]
        await asyncio.wait_for(
            asyncio.gather(*(link.ready.wait() for link in links)), START_TIMEOUT
        )
        if any(link.closed.is_set() for link in links):
            raise RuntimeError("a gateway exited while starting")

    async def _spawn(self, index: int) -> GatewayLink:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        shared = self._bound.fileno() if self._config.accept == "shared" else None
        http = None if self._http is None else self._http.fileno()
        command = gateway_command(
            self._gateway_config, index, GatewaySockets(theirs.fileno(), shared, http)
        )
        inherited = tuple(fd for fd in (theirs.fileno(), shared, http) if fd is not None)
        try:
            process = GatewayProcess(subprocess.Popen(command, pass_fds=inherited))
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._processes[index] = process
        log.info("gateway %d started (pid %d)", index, process.pid)
        watcher = asyncio.create_task(self._watch(index, process, time.monotonic()))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        loop = asyncio.get_running_loop()
        _, link = await loop.create_unix_connection(
            lambda: GatewayLink(index, self._service, self._on_failure), sock=ours
        )
        if self._http is not None:
            self._catch_up(link)
            self._links[index] = link
        return link

    # market data (a ``MarketListener`` for the publisher, when gateways serve HTTP)

    def _catch_up(self, link: GatewayLink) -> None:
        """Send a new gateway the committed market and leaderboard."""
        publisher = self._service.publisher
        link.send((ipc.MARKET_SNAPSHOT, _pickled(publisher.snapshot())))
        link.send((ipc.STANDINGS, _pickled(publisher.standings)))

    def reset(self, snapshot: MarketSnapshot) -> None:
        self._broadcast(ipc.MARKET_SNAPSHOT, snapshot)

    def publish(self, update: MarketUpdate) -> None:
        payload = pack_update(update)
        for link in self._links.values():
            link.send((ipc.MARKET_UPDATE, payload))

    def set_standings(self, standings: tuple[Standing, ...]) -> None:
        self._broadcast(ipc.STANDINGS, standings)

    def _broadcast(self, kind: int, value: object) -> None:
        """Pickle ``value`` once, for every gateway."""
        payload = _pickled(value)
        for link in self._links.values():
            link.send((kind, payload))

    async def _watch(self, index: int, process: GatewayProcess, started: float) -> None:
        status = await asyncio.shield(process.exited)
        if self._stopping:
            return
        log.warning(
            "gateway %d (pid %d) exited with status %d; starting it again",
            index,
            process.pid,
            status,
        )
        delay = self._config.gateway_restart_delay
        if time.monotonic() - started < delay:
            await asyncio.sleep(delay)
        await self._restart(index, delay)

    async def _restart(self, index: int, delay: float) -> None:
        """Start gateway ``index`` again, trying every ``delay`` seconds
        while it cannot be started (no descriptors or processes left)."""
        while not self._stopping:
            try:
                await self._spawn(index)
            except OSError as exc:
                log.error("gateway %d could not be started (%r); trying again", index, exc)
                await asyncio.sleep(delay)
            else:
                return

    async def stop(self, timeout: float) -> None:
        """SIGTERM every gateway and wait until they exit (SIGKILL after
        ``timeout``): they finish what they owe while the engine still runs."""
        self._stopping = True
        processes = list(self._processes.values())
        for process in processes:
            process.send_signal(signal.SIGTERM)
        _, running = await asyncio.wait([p.exited for p in processes], timeout=timeout)
        if running:
            for process in processes:
                if not process.exited.done():
                    log.warning("gateway pid %d did not stop; killing it", process.pid)
                    process.send_signal(signal.SIGKILL)
            await asyncio.wait(running)
