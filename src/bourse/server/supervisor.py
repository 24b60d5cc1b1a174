"""The engine process's side of ``--workers N``: gateway processes.

The engine process binds the server's address, starts N gateway processes
that accept on it (each on its own ``SO_REUSEPORT`` socket, or all on the
engine's one inherited socket), and keeps a ``GatewayLink`` to each: requests
arrive already parsed, are applied in the order they arrive, and their
outcomes go back under the gateway's tokens once their batch has committed
(the engine never parses or renders XML). A gateway that dies is started
again (its clients' connections died with it); stopping sends SIGTERM to
every gateway and waits for them to finish what they owe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from bourse.core.errors import ErrorCode
from bourse.core.results import Result
from bourse.server.config import ServerConfig
from bourse.server.gateway import gateway_command
from bourse.server.ipc import READY, STATS, MessageStream
from bourse.server.service import ExchangeService

log = logging.getLogger(__name__)

#: A gateway that dies sooner than this after its start is restarted only
#: after this delay, so a gateway that cannot start does not spin.
RESTART_DELAY = 1.0

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


class GatewayLink(MessageStream):
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
                elif token == STATS:
                    self._service.metrics.gateway_report(self._index, request)
                elif item == READY:
                    self.ready.set()
        except Exception as exc:  # a bug: the exchange state can no longer be trusted
            log.exception("request failed unexpectedly; stopping the server")
            self._on_failure(exc)

    def link_lost(self) -> None:
        """The supervisor sees the process exit; keep its counters, stop
        waiting for it."""
        self._service.metrics.gateway_gone(self._index)
        self.ready.set()


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


class Gateways:
    """N gateway processes around this process's engine."""

    def __init__(
        self,
        config: ServerConfig,
        bound: socket.socket,
        admin: socket.socket | None,
        service: ExchangeService,
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self._config = config
        self._bound = bound
        host, port = bound.getsockname()[:2]
        share = -(-config.max_connections // config.workers)  # ceiling division
        admin_port = None if admin is None else admin.getsockname()[1]
        self._gateway_config = replace(
            config, host=host, port=port, max_connections=share, admin_port=admin_port
        )
        self._service = service
        self._on_failure = on_failure
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        """The gateway processes running now."""
        return [process.pid for process in self._processes.values()]

    async def start(self) -> None:
        """Start every gateway; return once all accept connections."""
        links = [await self._spawn(index) for index in range(self._config.workers)]
        await asyncio.wait_for(
            asyncio.gather(*(link.ready.wait() for link in links)), START_TIMEOUT
        )
        if any(link.closed.is_set() for link in links):
            raise RuntimeError("a gateway exited while starting")

    async def _spawn(self, index: int) -> GatewayLink:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        shared = self._bound.fileno() if self._config.accept == "shared" else None
        command = gateway_command(self._gateway_config, index, theirs.fileno(), shared)
        inherited = (theirs.fileno(),) if shared is None else (theirs.fileno(), shared)
        process = subprocess.Popen(command, pass_fds=inherited)
        theirs.close()
        loop = asyncio.get_running_loop()
        _, link = await loop.create_unix_connection(
            lambda: GatewayLink(index, self._service, self._on_failure), sock=ours
        )
        self._processes[index] = process
        log.info("gateway %d started (pid %d)", index, process.pid)
        watcher = asyncio.create_task(self._watch(index, process, time.monotonic()))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return link

    async def _watch(self, index: int, process: subprocess.Popen[bytes], started: float) -> None:
        status = await asyncio.to_thread(process.wait)
        if self._stopping:
            return
        log.warning(
            "gateway %d (pid %d) exited with status %d; starting it again",
            index,
            process.pid,
            status,
        )
        if time.monotonic() - started < RESTART_DELAY:
            await asyncio.sleep(RESTART_DELAY)
        if not self._stopping:
            await self._spawn(index)

    async def stop(self, timeout: float) -> None:
        """SIGTERM every gateway and wait until they exit (SIGKILL after
        ``timeout``): they finish what they owe while the engine still runs."""
        self._stopping = True
        for process in self._processes.values():
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        waits = [asyncio.to_thread(process.wait) for process in self._processes.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout)
        except TimeoutError:
            for process in self._processes.values():
                if process.poll() is None:
                    log.warning("gateway pid %d did not stop; killing it", process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signal.SIGKILL)
            await asyncio.gather(*(asyncio.to_thread(p.wait) for p in self._processes.values()))
