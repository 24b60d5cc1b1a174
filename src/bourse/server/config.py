"""Server settings, with the defaults a user gets from ``bourse serve``."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field
from pathlib import Path

from bourse.protocol.framing import DEFAULT_MAX_REQUEST_SIZE

DEFAULT_PORT = 12345
DEFAULT_DATA_DIR = Path("bourse-data")


def default_workers() -> int:
    """One gateway process per usable core; none on a single core, where
    gateways would only add a hop (everything runs in one process)."""
    cores = len(os.sched_getaffinity(0))
    return cores if cores > 1 else 0


#: Descriptors kept free for the database, logs and the listening sockets.
SPARE_DESCRIPTORS = 64


def default_max_connections() -> int:
    """10,000, or fewer if the open-file limit (raised to its hard maximum
    at start) would not leave room for them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    usable = hard if hard != resource.RLIM_INFINITY else soft
    return max(1, min(10_000, usable - SPARE_DESCRIPTORS))


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How the server listens, where it keeps its data, how long it waits."""

    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    #: PostgreSQL to use; None starts the embedded one in ``data_dir``.
    database_url: str | None = None
    #: Gateway processes doing sockets, framing and XML around the engine
    #: process; 0 runs everything in one process.
    workers: int = field(default_factory=default_workers)
    #: How gateways share the port: "reuseport" (a socket each, SO_REUSEPORT:
    #: the kernel spreads new connections evenly) or "shared" (one socket
    #: bound by the engine process and inherited: a busy gateway accepts
    #: less, a restarted one loses nothing queued).
    accept: str = "reuseport"
    #: Where the embedded PostgreSQL keeps its files.
    data_dir: Path = DEFAULT_DATA_DIR
    #: Largest request accepted, in bytes of XML.
    max_request_size: int = DEFAULT_MAX_REQUEST_SIZE
    #: Seconds a connection may stay silent between requests.
    idle_timeout: float = 300.0
    #: Seconds from a request's first byte to its last.
    body_timeout: float = 30.0
    #: Seconds a batch may take to commit before the database counts as down.
    commit_timeout: float = 5.0
    #: Seconds a shutdown waits for requests being received or committed.
    shutdown_grace: float = 5.0
    #: Connections the kernel may queue before they are accepted (asyncio's
    #: default of 100 makes a burst of new connections wait a one-second
    #: SYN retransmission).
    listen_backlog: int = 1024
    #: Bytes of unsent replies above which a connection stops being read.
    write_high_water: int = 1 << 20
    #: Bytes of unsent replies above which a connection is dropped: a
    #: client that never reads costs the server no more than this.
    max_unsent_bytes: int = 8 << 20
    #: Requests one connection may have in progress (received, not yet
    #: answered); past it the connection is not read until replies leave.
    max_pipelined: int = 256
    #: Open connections; when full, a new one evicts the longest-idle one.
    max_connections: int = field(default_factory=default_max_connections)
    #: Requests a second per connection (token bucket; 0: no limit) and the
    #: burst allowed above that rate.
    connection_rate: float = 0.0
    connection_burst: float = 100.0
    #: The same per account, over all its connections (``<transactions>``).
    account_rate: float = 0.0
    account_burst: float = 100.0
    #: Open orders one account may have at once (0: no cap).
    max_open_orders: int = 0
    #: ``<executed>`` fills one request's queries and cancels may report in
    #: all; past it a query or cancel gets an error in its place, unless it
    #: is the first in its request to report any (0: no cap).
    max_reply_fills: int = 10_000
    #: Rows one batch may write: a batch is closed after the request that
    #: reaches this, so a commit's duration stays bounded under any burst.
    max_batch_rows: int = 50_000
    #: Commands one request may hold, counting each ``<symbol>/<account>``
    #: pair; more is refused as too large.
    max_commands: int = 100_000
    #: Seconds each step of a recovery (reconnect, restart the embedded
    #: PostgreSQL, settle an in-doubt commit, reload) may take before the
    #: attempt is made again.
    recovery_timeout: float = 300.0
    #: Seconds a gateway that died within this long of its start waits
    #: before it is started again (so one that cannot start does not spin).
    gateway_restart_delay: float = 1.0
    #: Seconds a closing connection's client may take none of its unsent
    #: bytes before the connection is reset.
    closing_stall: float = 5.0
    #: A second listener where ``<create>`` is accepted (None: none; 0
    #: picks a free port). With it, the public port refuses ``<create>``
    #: unless the client's network is in ``create_networks``.
    admin_port: int | None = None
    admin_host: str = "127.0.0.1"
    #: Networks (CIDR) whose clients may ``<create>`` on the public port.
    create_networks: tuple[str, ...] = ()
    #: ``account_id sha256-hex`` lines: ``<transactions>`` then needs the
    #: account's token (None: no tokens).
    account_tokens: Path | None = None
    #: TLS on the public port: certificate chain and key (PEM), and the CA
    #: that client certificates must chain to (None: none asked).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    #: Seconds a client has to complete the TLS handshake.
    tls_handshake_timeout: float = 10.0
    #: HTTP port for Prometheus ``/metrics`` and the ``/healthz`` readiness
    #: check (None: not served; 0 picks a free port).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    #: "text" or "json" log lines (gateways log the same way).
    log_format: str = "text"
    #: Seconds between log lines summarising batch sizes and commit times.
    stats_interval: float = 10.0
