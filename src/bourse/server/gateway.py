"""A gateway process: sockets, framing, XML and rendering for the engine.

``bourse serve --workers N`` starts N of these (``python -m
bourse.server.gateway``). Each listens on the server's port with a socket
of its own (``SO_REUSEPORT``) or accepts on the engine process's inherited
socket (``--accept shared``), and holds one end of a Unix socket pair to
the engine. It
accepts and serves connections exactly as the single-process server does,
but instead of applying a parsed request it sends it to the engine and
keeps the connection's reply slot under a token until the engine answers
(after the batch committed). Replies of one connection stay in order
because each connection's session releases slots only from the front.

If the engine goes away the gateway drops its connections and exits 1;
SIGTERM or SIGINT stops accepting, finishes what is owed, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import pickle
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from bourse.core.commands import Request
from bourse.core.errors import ErrorCode
from bourse.logs import configure_logging
from bourse.protocol.session import ReplySlot
from bourse.server import ipc
from bourse.server.config import ServerConfig
from bourse.server.frontend import Frontend
from bourse.server.market_codec import unpack_update
from bourse.server.market_web import market_feed
from bourse.server.metrics import FrontendCounters
from bourse.server.publisher import MarketListener
from bourse.server.web import start_web

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ENGINE_GONE = 1

#: Seconds between two reports of the gateway's counters to the engine.
STATS_INTERVAL = 1.0


class EngineLink(ipc.MessageStream):
    """The gateway's end of the link: requests out, outcomes in."""

    def __init__(self, market: MarketListener | None = None) -> None:
        super().__init__()
        #: Where market data goes (None: this gateway serves no HTTP).
        self.market = market
        self._next_token = 0
        self._waiting: dict[int, ReplySlot] = {}
        self._drained = asyncio.Event()
        self._drained.set()

    def submit(self, request: Request, reply: ReplySlot) -> None:
        """Send ``request`` to the engine; ``reply`` is resolved by its answer."""
        self._next_token += 1
        self._waiting[self._next_token] = reply
        self._drained.clear()
        self.send((self._next_token, request))

    def items_received(self, items: list[Any]) -> None:
        waiting = self._waiting
        for token, outcome in items:
            if token < 0:
                self._market_item(token, outcome)
                continue
            reply = waiting.pop(token)
            if outcome is None:
                reply.drop()
            elif isinstance(outcome, ErrorCode):
                reply.refuse(outcome)
            else:
                reply.release(outcome)
        if not waiting:
            self._drained.set()

    def _market_item(self, kind: int, payload: bytes) -> None:
        market = self.market
        if market is None:
            return
        if kind == ipc.MARKET_UPDATE:
            market.publish(unpack_update(payload))
            return
        value = pickle.loads(payload)  # noqa: S301 - from our own engine process
        if kind == ipc.MARKET_SNAPSHOT:
            market.reset(value)
        elif kind == ipc.STANDINGS:
            market.set_standings(value)

    def undeliverable(self, item: Any) -> Any | None:
        """A request too large for the link is refused here, unsent."""
        token, _ = item
        self._waiting.pop(token).refuse(ErrorCode.REQUEST_TOO_LARGE)
        if not self._waiting:
            self._drained.set()
        return None

    def link_lost(self) -> None:
        waiting, self._waiting = self._waiting, {}
        for reply in waiting.values():
            reply.drop()
        self._drained.set()

    async def drain(self) -> None:
        """Wait until every request sent has been answered."""
        await self._drained.wait()

    @property
    def waiting(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._waiting)


async def report_counters(engine: EngineLink, counters: FrontendCounters) -> None:
    """Send this gateway's counters to the engine process every second."""
    while True:
        counters.waiting = engine.waiting
        engine.send((ipc.STATS, counters.snapshot()))
        await asyncio.sleep(STATS_INTERVAL)


async def serve_gateway(
    config: ServerConfig,
    link: socket.socket,
    listener: socket.socket | None,
    http: socket.socket | None = None,
) -> int:
    """Serve clients for the engine at the end of ``link``: on ``listener``
    if given, else on a socket of its own bound with ``SO_REUSEPORT``; and
    the web view and market data on ``http``, if given."""
    loop = asyncio.get_running_loop()
    feed = None if http is None else market_feed(config)  # before the link: it gets a snapshot
    _, engine = await loop.create_unix_connection(lambda: EngineLink(feed), sock=link)
    web = None if feed is None or http is None else await start_web(feed, http, config)
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def fail(exc: BaseException) -> None:
        failure.append(exc)
        stop.set()

    counters = FrontendCounters()
    frontends = [Frontend(config, engine.submit, fail, counters=counters)]
    await frontends[0].listen(listener, reuse_port=listener is None)
    if config.admin_port is not None:
        frontends.append(Frontend(config, engine.submit, fail, admin=True, counters=counters))
        await frontends[1].listen(reuse_port=True)
    engine.send(ipc.READY)
    reporter = asyncio.create_task(report_counters(engine, counters))
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    stopped = asyncio.create_task(stop.wait())
    engine_gone = asyncio.create_task(engine.closed.wait())
    await asyncio.wait({stopped, engine_gone}, return_when=asyncio.FIRST_COMPLETED)
    if web is not None:
        await web.close()
    if engine.closed.is_set():
        log.error("the engine went away; dropping connections")
        for frontend in frontends:
            frontend.abort_all()
        return EXIT_ENGINE_GONE
    await asyncio.gather(*(frontend.close(engine.drain) for frontend in frontends))
    reporter.cancel()
    counters.waiting = engine.waiting
    engine.send((ipc.STATS, counters.snapshot()))
    engine.close()
    log.info("gateway stopped after %d connections", counters.accepted)
    return EXIT_ENGINE_GONE if failure else EXIT_OK


@dataclass(frozen=True, slots=True)
class GatewaySockets:
    """The descriptors a gateway inherits: its link to the engine, the
    engine's listening socket when shared, the HTTP listening socket."""

    link: int
    listen: int | None = None
    http: int | None = None


def gateway_command(config: ServerConfig, index: int, sockets: GatewaySockets) -> list[str]:
    """The command line that starts gateway ``index`` with these sockets.
    Gateways never touch the database, so its URL (which may hold a
    password) stays out of their command line."""
    settings = asdict(replace(config, database_url=None))
    return [
        sys.executable,
        "-m",
        "bourse.server.gateway",
        f"--index={index}",
        f"--link-fd={sockets.link}",
        *([] if sockets.listen is None else [f"--listen-fd={sockets.listen}"]),
        *([] if sockets.http is None else [f"--http-fd={sockets.http}"]),
        f"--log-level={logging.getLevelName(logging.getLogger().getEffectiveLevel())}",
        "--config=" + json.dumps(settings, default=str),
    ]


def _config_from_json(text: str) -> ServerConfig:
    """The inverse of the JSON in ``gateway_command``: paths and tuples
    come back from strings and lists."""
    settings = json.loads(text)
    for spec in fields(ServerConfig):
        value = settings[spec.name]
        if value is not None and "Path" in str(spec.type):
            settings[spec.name] = Path(value)
        elif "tuple" in str(spec.type):
            settings[spec.name] = tuple(value)
    return ServerConfig(**settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of a gateway process."""
    import uvloop  # noqa: PLC0415 - as in the server

    parser = argparse.ArgumentParser(prog="bourse-gateway")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--listen-fd", type=int, default=None)
    parser.add_argument("--link-fd", type=int, required=True)
    parser.add_argument("--http-fd", type=int, default=None)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    config = _config_from_json(args.config)
    configure_logging(
        args.log_level, json_lines=config.log_format == "json", process=f"gateway-{args.index}"
    )
    listener = None if args.listen_fd is None else socket.socket(fileno=args.listen_fd)
    link = socket.socket(fileno=args.link_fd)
    http = None if args.http_fd is None else socket.socket(fileno=args.http_fd)
    return uvloop.run(serve_gateway(config, link, listener, http))


if __name__ == "__main__":
    sys.exit(main())
