"""Server settings, with the defaults a user gets from ``bourse serve``."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

from bourse.options import (
    OneOf,
    computed_setting,
    count,
    networks,
    number,
    port_or_off,
    positive_count,
    positive_seconds,
    seconds,
    setting,
    switch,
    tcp_port,
)
from bourse.protocol.framing import DEFAULT_MAX_REQUEST_SIZE

DEFAULT_PORT = 12345
DEFAULT_DATA_DIR = Path("bourse-data")


#: Usable cores up to which the exchange runs in one process by default:
#: measured on two cores shared with PostgreSQL, the gateway hop costs more
#: than it takes off the engine process (docs/performance.md).
ONE_PROCESS_CORES = 2


def default_workers() -> int:
    """One gateway process per usable core above ``ONE_PROCESS_CORES``;
    none up to it, where gateways would only add a hop (everything runs in
    one process)."""
    cores = len(os.sched_getaffinity(0))
    return cores if cores > ONE_PROCESS_CORES else 0


#: Descriptors kept free for the database, logs and the listening sockets.
SPARE_DESCRIPTORS = 64


def default_max_connections() -> int:
    """10,000, or fewer if the open-file limit (raised to its hard maximum
    at start) would not leave room for them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    usable = hard if hard != resource.RLIM_INFINITY else soft
    return max(1, min(10_000, usable - SPARE_DESCRIPTORS))


def _bucket_rate(help_text: str) -> float:
    """The rate option of a token bucket: off unless given."""
    return setting(0.0, help_text, number, default_text="off")


def _bucket_burst(help_text: str) -> float:
    """The burst option of a token bucket."""
    return setting(100.0, help_text, number)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How the server listens, where it keeps its data, how long it waits.
    Every field is a ``bourse serve`` option: its metadata is the one
    declaration of its flag, variable, check and help (``bourse.options``)."""

    host: str = setting("0.0.0.0", "address to listen on")
    port: int = setting(
        DEFAULT_PORT, "TCP port (`0` picks a free one; the log says which)", tcp_port
    )
    database_url: str | None = setting(
        None,
        "PostgreSQL to use, e.g. `postgresql://user@host:5432/bourse`, or several hosts "
        "of a replicated cluster, `postgresql://user@h1:5432,h2:5432/bourse` (bourse "
        "writes to whichever accepts writes; see `docs/operations.md`); without it, "
        "an embedded PostgreSQL runs in `--data-dir`",
        secret=True,
    )
    require_sync_standby: bool = setting(
        False,
        "acknowledge nothing while the database has no synchronous standby streaming "
        "(requests get `Exchange unavailable` instead): durability over availability",
        switch,
    )
    workers: int = computed_setting(
        default_workers,
        "gateway processes that do sockets, framing and XML around the one engine "
        "process; `0` runs everything in one process (see `docs/architecture.md`); "
        "gateways need Linux 5.3 or later (they are watched through pidfds)",
        count,
        default_text="usable cores, `0` on one or two",
    )
    accept: str = setting(
        "reuseport",
        "how gateways share the port: `reuseport` (a socket each, SO_REUSEPORT: the "
        "kernel spreads new connections evenly) or `shared` (one socket bound by the "
        "engine process and inherited: a busy gateway accepts less, a restarted one "
        "loses nothing queued)",
        OneOf("reuseport", "shared"),
    )
    # ``setting`` makes a ``dataclasses.field``: ruff cannot see that (RUF009)
    # where the type is not one it knows to be immutable, as ``Path``.
    data_dir: Path = setting(  # noqa: RUF009
        DEFAULT_DATA_DIR, "where the embedded PostgreSQL keeps its files", Path
    )
    max_request_size: int = setting(
        DEFAULT_MAX_REQUEST_SIZE,
        "largest request, in bytes of XML; larger ones are refused",
        positive_count,
    )
    idle_timeout: float = setting(
        300.0, "seconds a connection may stay silent between requests", seconds
    )
    body_timeout: float = setting(30.0, "seconds from a request's first byte to its last", seconds)
    commit_timeout: float = setting(
        5.0,
        "seconds a batch may take to commit before the database counts as down (time "
        "the server spends on its own work meanwhile does not count; a batch larger "
        "than `--max-batch-rows`, one request alone, gets a multiple)",
        seconds,
    )
    shutdown_grace: float = setting(
        5.0, "seconds SIGTERM waits for requests being received or committed", seconds
    )
    listen_backlog: int = setting(
        1024,
        "connections the kernel queues before they are accepted (asyncio's default "
        "of 100 makes a burst of new connections wait a one-second SYN retransmission)",
        count,
    )
    write_high_water: int = setting(
        1 << 20,
        "unsent reply bytes above which a connection is no longer read, until its "
        "client has taken most of them (keep it below `--max-unsent-bytes`)",
        count,
    )
    max_unsent_bytes: int = setting(
        8 << 20,
        "unsent reply bytes before a client that does not read is dropped: all a "
        "client that never reads can cost the server",
        count,
    )
    max_pipelined: int = setting(
        256,
        "requests in progress (received, not yet answered) per connection before it "
        "is no longer read, until replies leave",
        count,
    )
    max_connections: int = computed_setting(
        default_max_connections,
        "open connections; when full, a new one evicts the longest-idle",
        count,
        default_text="`10000`, fewer if the open-file limit is lower",
    )
    connection_rate: float = _bucket_rate(
        "requests per second per connection (token bucket); `0`: no limit"
    )
    connection_burst: float = _bucket_burst(
        "requests a connection may send at once above `--connection-rate`"
    )
    account_rate: float = _bucket_rate(
        "`<transactions>` per second per account, over all its connections (token "
        "bucket); `0`: no limit"
    )
    account_burst: float = _bucket_burst(
        "`<transactions>` an account may send at once above `--account-rate`"
    )
    max_open_orders: int = setting(
        0, "open orders one account may have at once; `0`: no cap", count, default_text="off"
    )
    max_reply_fills: int = setting(
        10_000,
        "`<executed>` fills one request's queries and cancels may report in all; past "
        "it a query or cancel gets `Reply too large` in its place (the first to report "
        "any is always answered in full, except that closed orders answered from the "
        "database come after the others: docs/protocol.md); `0`: no cap",
        count,
    )
    max_batch_rows: int = setting(
        50_000,
        "rows one batch may write before it is closed (after the request that reaches "
        "it), so a commit's duration stays bounded under any burst",
        positive_count,
    )
    max_projection_lag: int = setting(
        200_000,
        "rows of committed batches the documented tables may trail the journal by; "
        "past it, commits (and so replies) wait for the projection to catch up",
        positive_count,
    )
    max_commands: int = setting(
        100_000,
        "commands one request may hold, counting each `<symbol>`/`<account>` pair; a "
        "request with more is refused as too large",
        positive_count,
    )
    recovery_timeout: float = setting(
        300.0,
        "seconds each step of a recovery from a database failure (reconnect, restart "
        "the embedded PostgreSQL, end the session of an in-doubt commit, reload) may take "
        "before "
        "the attempt is made again",
        positive_seconds,
    )
    gateway_restart_delay: float = setting(
        1.0,
        "seconds a gateway that died within this long of its start waits before it is "
        "started again (so one that cannot start does not spin)",
        seconds,
    )
    closing_stall: float = setting(
        5.0,
        "seconds a closing connection's client may take none of its unsent reply bytes "
        "before the connection is reset",
        seconds,
    )
    admin_port: int | None = setting(
        None,
        "a second listener where `<create>` is accepted, then refused on the public "
        "port unless `--create-networks` names the client's network; `0` picks a free "
        "port, `off` has none",
        port_or_off,
        default_text="off",
    )
    admin_host: str = setting("127.0.0.1", "address of the `--admin-port` listener")
    create_networks: tuple[str, ...] = setting(
        (),
        "comma-separated networks (CIDR) whose clients may `<create>` on the public port",
        networks,
    )
    account_tokens: Path | None = setting(  # noqa: RUF009
        None,
        'file of `account_id sha256-hex-of-token` lines: `<transactions token="…">` '
        "is then required, with the account's token",
        Path,
    )
    tls_cert: Path | None = setting(  # noqa: RUF009
        None, "TLS on the public port: its certificate chain (PEM)", Path
    )
    tls_key: Path | None = setting(None, "the private key (PEM) of `--tls-cert`", Path)  # noqa: RUF009
    tls_client_ca: Path | None = setting(  # noqa: RUF009
        None,
        "CA (PEM) that client certificates must chain to: with it, client certificates "
        "are required and clients without one are refused",
        Path,
    )
    tls_handshake_timeout: float = setting(
        10.0, "seconds a client has to complete the TLS handshake", seconds
    )
    metrics_port: int | None = setting(
        None,
        "HTTP port for Prometheus `/metrics` and the `/healthz` readiness check; `0` "
        "picks a free one, `off` serves neither",
        port_or_off,
        default_text="off",
    )
    metrics_host: str = setting("127.0.0.1", "address of the `--metrics-port` endpoint")
    http_port: int | None = setting(
        8080,
        "HTTP port of the web view, the market-data API and the `/ws` feed; `0` picks "
        "a free one (the log says which), `off` serves none",
        port_or_off,
    )
    http_host: str | None = setting(
        None, "address of the `--http-port` listener", default_text="`--host`"
    )
    leaderboard: bool = setting(
        False,
        "publish accounts ranked by cash plus positions at the last trade price "
        "(`/leaderboard`, `/api/leaderboard`): it reveals balances",
        switch,
    )
    max_subscribers: int = setting(
        1_000,
        "WebSocket connections one process serves at once (each gateway, or the one "
        "process with `--workers 0`); one more is refused",
        positive_count,
    )
    max_feed_message: int = setting(
        4096,
        "largest message, in bytes, a WebSocket client may send; a larger one closes "
        "its connection",
        positive_count,
    )
    subscriber_backlog: int = setting(
        1 << 20,
        "feed bytes a WebSocket subscriber may leave unread; past it its updates are "
        "conflated into a fresh snapshot once it reads again",
        positive_count,
    )
    feed_interval: float = setting(
        0.01,
        "seconds a WebSocket subscriber's messages are gathered into one frame after it "
        "was sent one (a message after a quiet interval leaves at once): at most one "
        "frame per interval each, however fast the market moves",
        seconds,
    )
    log_format: str = setting(
        "text",
        "`text` lines, or `json`: one object per line (gateways log the same way; "
        "repeats are rate-limited)",
        OneOf("text", "json"),
    )
    stats_interval: float = setting(
        10.0, "seconds between log lines summarising batch sizes and commit times", positive_seconds
    )
