"""The ``bourse`` command: ``bourse serve`` runs the exchange,
``bourse db upgrade`` applies the database migrations, ``bourse bench``
measures a running server, ``bourse scale`` measures how it scales with
cores, ``bourse report`` turns results into a PDF and ``bourse gen``
writes load files for any client.

Every ``serve`` option may also be set through the environment as
``BOURSE_`` followed by the option's name in capitals (``--database-url``
is ``BOURSE_DATABASE_URL``); a command-line option wins over the
environment.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from bourse.bench.run import BenchSettings
from bourse.bench.workload import WorkloadShape
from bourse.logs import configure_logging
from bourse.server.config import ServerConfig


def _env_default(option: str, fallback: Any, convert: Callable[[str], Any] = str) -> Any:
    """The default of ``--option``: ``BOURSE_OPTION`` if set, else ``fallback``."""
    value = os.environ.get("BOURSE_" + option.upper().replace("-", "_"))
    return fallback if value is None else convert(value)


def _add(
    parser: argparse.ArgumentParser,
    option: str,
    fallback: Any,
    help_text: str,
    convert: Callable[[str], Any] = str,
    *,
    secret: bool = False,
    **extra: Any,
) -> None:
    """Add ``--option``; its help names the variable and, unless the value
    may hold a secret (a password in a URL), the default in force."""
    variable = "BOURSE_" + option.upper().replace("-", "_")
    shown = variable if secret else f"{variable}; %(default)s"
    parser.add_argument(
        f"--{option}",
        type=convert,
        default=_env_default(option, fallback, convert),
        help=f"{help_text} (env {shown})",
        **extra,
    )


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ServerConfig()
    _add(parser, "host", defaults.host, "address to listen on")
    _add(parser, "port", defaults.port, "TCP port; 0 picks a free one", int)
    _add(
        parser,
        "workers",
        defaults.workers,
        "gateway processes around the engine process; 0 runs everything in one process "
        "(default: the usable cores, or 0 on one core)",
        _count,
    )
    _add(
        parser,
        "accept",
        defaults.accept,
        "how gateways share the port: a socket each with SO_REUSEPORT (even spread of "
        "connections) or one inherited socket",
        choices=["reuseport", "shared"],
    )
    _add(
        parser,
        "log-level",
        "INFO",
        "logging threshold",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
    )
    _add(
        parser,
        "log-format",
        defaults.log_format,
        "text lines, or one JSON object per line",
        choices=["text", "json"],
    )
    _add_database_arguments(parser)
    _add(
        parser,
        "max-request-size",
        defaults.max_request_size,
        "largest request in bytes; larger ones are refused",
        int,
    )
    _add(
        parser,
        "idle-timeout",
        defaults.idle_timeout,
        "seconds a connection may stay silent between requests",
        float,
    )
    _add(
        parser,
        "body-timeout",
        defaults.body_timeout,
        "seconds allowed from a request's first byte to its last",
        float,
    )
    _add(
        parser,
        "commit-timeout",
        defaults.commit_timeout,
        "seconds a batch may take to commit before the database counts as down",
        float,
    )
    _add(
        parser,
        "max-connections",
        defaults.max_connections,
        "open connections; when full, a new one evicts the longest-idle one",
        _count,
    )
    _add(
        parser,
        "max-pipelined",
        defaults.max_pipelined,
        "requests one connection may have in progress before it is no longer read",
        _count,
    )
    _add(
        parser,
        "max-unsent-bytes",
        defaults.max_unsent_bytes,
        "unsent reply bytes above which a client that does not read is dropped",
        _count,
    )
    _add(
        parser,
        "connection-rate",
        defaults.connection_rate,
        "requests a second per connection, 0 for no limit",
        float,
    )
    _add(parser, "connection-burst", defaults.connection_burst, "burst above that rate", float)
    _add(
        parser,
        "account-rate",
        defaults.account_rate,
        "<transactions> requests a second per account, 0 for no limit",
        float,
    )
    _add(parser, "account-burst", defaults.account_burst, "burst above that rate", float)
    _add(
        parser,
        "max-open-orders",
        defaults.max_open_orders,
        "open orders one account may have at once, 0 for no cap",
        _count,
    )
    _add(
        parser,
        "max-reply-fills",
        defaults.max_reply_fills,
        "fills one request's queries and cancels may report in all (the first to report "
        "any is always answered in full), 0 for no cap",
        _count,
    )
    _add(
        parser,
        "max-batch-rows",
        defaults.max_batch_rows,
        "rows one batch may write before it is closed (bounds a commit's duration)",
        _positive,
    )
    _add(
        parser,
        "listen-backlog",
        defaults.listen_backlog,
        "connections the kernel queues before they are accepted",
        _count,
    )
    _access_arguments(parser)
    _add(
        parser,
        "shutdown-grace",
        defaults.shutdown_grace,
        "seconds a shutdown waits for requests in progress",
        float,
    )


def _networks(text: str) -> tuple[str, ...]:
    """``10.0.0.0/8,192.168.1.7`` as a tuple of networks, checked."""
    networks = tuple(part.strip() for part in text.split(",") if part.strip())
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
    return networks


def _access_arguments(parser: argparse.ArgumentParser) -> None:
    """Access control and TLS, all off by default (docs/security.md)."""
    defaults = ServerConfig()
    _add(
        parser,
        "admin-port",
        defaults.admin_port,
        "a second port where <create> is accepted (then refused on the public port "
        "unless --create-networks names the client's network); 0 picks a free one",
        _count,
    )
    _add(parser, "admin-host", defaults.admin_host, "address of the admin listener")
    _add(
        parser,
        "create-networks",
        defaults.create_networks,
        "comma-separated networks (CIDR) whose clients may <create> on the public port",
        _networks,
    )
    _add(
        parser,
        "account-tokens",
        defaults.account_tokens,
        "file of 'account_id sha256-hex-of-token' lines: <transactions> then needs token=\"…\"",
        Path,
    )
    _add(
        parser,
        "tls-cert",
        defaults.tls_cert,
        "TLS certificate chain (PEM) for the public port",
        Path,
    )
    _add(parser, "tls-key", defaults.tls_key, "its private key (PEM)", Path)
    _add(
        parser,
        "tls-client-ca",
        defaults.tls_client_ca,
        "CA (PEM) that client certificates must chain to; clients without one are refused",
        Path,
    )
    _add(
        parser,
        "metrics-port",
        defaults.metrics_port,
        "HTTP port for Prometheus /metrics and the /healthz readiness check; 0 picks one",
        _count,
    )
    _add(parser, "metrics-host", defaults.metrics_host, "address of the metrics endpoint")
    _add(
        parser,
        "tls-handshake-timeout",
        defaults.tls_handshake_timeout,
        "seconds a client has to complete the TLS handshake",
        float,
    )


def _add_database_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ServerConfig()
    _add(
        parser,
        "database-url",
        None,
        "PostgreSQL URL, e.g. postgresql://user@host:5432/db; without it an embedded "
        "PostgreSQL runs in --data-dir",
        secret=True,
    )
    _add(parser, "data-dir", defaults.data_dir, "embedded PostgreSQL's directory", Path)


def _count(text: str) -> int:
    """A non-negative integer."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a count: {text}")
    return value


def _positive(text: str) -> int:
    """A positive integer."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive count: {text}")
    return value


def _count_list(text: str) -> list[int]:
    """``0,1,2`` as a list of non-negative integers."""
    return [_count(part) for part in text.split(",")]


def _health_arguments(parser: argparse.ArgumentParser) -> None:
    """The options and ``BOURSE_*`` variables of ``serve``, which say where
    the server listens and how to speak to it, and the probe's own."""
    _serve_arguments(parser)
    _add(
        parser,
        "health-cert",
        None,
        "client certificate (PEM) the probe presents when the public port requires one",
        Path,
    )
    _add(parser, "health-key", None, "its private key (PEM)", Path)
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the answer (%(default)s)"
    )


def _load_arguments(parser: argparse.ArgumentParser) -> None:
    """The size of the load, shared by ``bench`` and ``scale``."""
    defaults = BenchSettings()
    parser.add_argument(
        "--clients", type=int, default=defaults.clients, help="concurrent clients (%(default)s)"
    )
    parser.add_argument(
        "--requests-per-client",
        type=int,
        default=defaults.requests_per_client,
        help="requests each client sends (%(default)s)",
    )
    parser.add_argument(
        "--orders-per-request",
        type=int,
        default=defaults.orders_per_request,
        help="orders in each <transactions> (%(default)s)",
    )


def _bench_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = BenchSettings()
    parser.add_argument("--host", default=defaults.host, help="server address (%(default)s)")
    parser.add_argument("--port", type=int, default=defaults.port, help="server port (%(default)s)")
    _load_arguments(parser)
    parser.add_argument(
        "--connection-per-request",
        action="store_true",
        help="open a new connection for every request (default: persistent connections)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open loop: requests per second over all clients, latency measured from each "
        "request's scheduled time (default: closed loop)",
    )
    parser.add_argument(
        "--accounts", type=int, default=defaults.accounts, help="accounts (%(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="workload seed (%(default)s)"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="also check the conservation invariants in this database (explicit only)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _gen_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = WorkloadShape()
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("testing/generated"),
        help="directory for setup.bin, requests.bin and manifest.json (%(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="workload seed; same seed, same bytes (%(default)s)"
    )
    parser.add_argument(
        "--accounts", type=int, default=defaults.accounts, help="accounts (%(default)s)"
    )
    parser.add_argument(
        "--symbols", type=int, default=defaults.symbols, help="symbols (%(default)s)"
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=5000,
        help="<transactions> requests in requests.bin (%(default)s)",
    )
    parser.add_argument(
        "--orders-per-request",
        type=int,
        default=defaults.orders_per_request,
        help="children of each <transactions> (%(default)s)",
    )
    parser.add_argument(
        "--query-share",
        type=float,
        default=defaults.query_share,
        help="share of children that query an earlier order of the account (%(default)s)",
    )
    parser.add_argument(
        "--cancel-share",
        type=float,
        default=defaults.cancel_share,
        help="share of children that cancel an earlier order of the account (%(default)s)",
    )


def _scale_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-cores",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="measure with 1..N server cores (usable cores: %(default)s)",
    )
    parser.add_argument(
        "--repetitions", type=int, default=3, help="runs per core count (%(default)s)"
    )
    parser.add_argument(
        "--workers",
        type=_count_list,
        default=None,
        help="server --workers values to compare, e.g. 0,1,2: one series each, in "
        "OUT/workers-N (default: the server's own default, one series in OUT)",
    )
    parser.add_argument(
        "--connection-per-request",
        action="store_true",
        help="open a new connection for every request (default: persistent connections)",
    )
    _load_arguments(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for the results and plots (bench-results/scale-<timestamp>)",
    )


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sources",
        type=Path,
        nargs="+",
        help="bourse scale result directories, summary.json or bourse bench JSON files",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("writeup/report.pdf"), help="the PDF (%(default)s)"
    )
    parser.add_argument(
        "--analysis",
        type=Path,
        default=None,
        help="text file with the analysis (default: a generated summary)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``bourse``."""
    parser = argparse.ArgumentParser(
        prog="bourse", description="An exchange matching server speaking XML over TCP."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the exchange server")
    _serve_arguments(serve)
    _bench_arguments(commands.add_parser("bench", help="measure a running server"))
    _scale_arguments(
        commands.add_parser("scale", help="measure throughput and latency against server cores")
    )
    _report_arguments(commands.add_parser("report", help="write a PDF report of results"))
    _gen_arguments(
        commands.add_parser(
            "gen",
            help="write seeded load files (framed requests) for any client",
            description="Write setup.bin (framed <create> requests), requests.bin "
            "(framed <transactions> requests) and manifest.json. Queries and cancels name "
            "order ids assuming the setup and then the stream are applied alone, in file "
            "order, to a fresh exchange.",
        )
    )
    null = commands.add_parser("null-server", help="a server that only parses and answers")
    null.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    null.add_argument("--port", type=int, default=12346, help="TCP port (%(default)s)")
    null.add_argument(
        "--fixed",
        action="store_true",
        help="answer a constant <opened> per order without parsing (measures the client)",
    )
    _health_arguments(
        commands.add_parser(
            "health",
            help="exit 0 if a server answers an empty <create> without an error",
            description="Probe the server that serve's options and BOURSE_* variables "
            "describe: an empty <create> on its public port (over TLS if it has a "
            "certificate), or, when that port requires a client certificate the probe "
            "lacks, its admin listener or its metrics /healthz. Exit 0 if healthy.",
        )
    )
    database = commands.add_parser("db", help="database maintenance")
    actions = database.add_subparsers(dest="action", required=True)
    upgrade = actions.add_parser("upgrade", help="apply the schema migrations and exit")
    _add_database_arguments(upgrade)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from bourse.server.app import configuration_problem, run  # noqa: PLC0415 - keeps `--help` fast

    config = _server_config(args)
    problem = configuration_problem(config)
    if problem is not None:
        print(f"bourse serve: {problem}", file=sys.stderr)
        return 2
    return run(config)


def _health(args: argparse.Namespace) -> int:
    from bourse.health import probe  # noqa: PLC0415

    outcome = probe(
        _server_config(args), args.timeout, certificate=args.health_cert, key=args.health_key
    )
    if outcome.healthy:
        print(f"healthy: {outcome.detail}")
        return 0
    print(f"unhealthy: {outcome.detail}", file=sys.stderr)
    return 1


def _server_config(args: argparse.Namespace) -> ServerConfig:
    """The configuration that ``serve``'s options in ``args`` describe."""
    given = {spec.name: getattr(args, spec.name, None) for spec in fields(ServerConfig)}
    return ServerConfig(**{name: value for name, value in given.items() if value is not None})


def _upgrade(args: argparse.Namespace) -> int:
    from bourse.server.app import open_database  # noqa: PLC0415
    from bourse.store.store import Store  # noqa: PLC0415

    async def upgrade(url: str) -> None:
        store = Store(url)
        try:
            await store.migrate()
        finally:
            await store.close()

    with open_database(args.database_url, args.data_dir) as database:
        asyncio.run(upgrade(database.url))
    logging.getLogger("bourse").info("database schema is up to date")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from rich.console import Console  # noqa: PLC0415 - keeps `--help` fast
    from rich.progress import Progress  # noqa: PLC0415

    from bourse.bench.run import bench, report, write_json  # noqa: PLC0415

    settings = BenchSettings(
        host=args.host,
        port=args.port,
        clients=args.clients,
        requests_per_client=args.requests_per_client,
        orders_per_request=args.orders_per_request,
        persistent=not args.connection_per_request,
        rate=args.rate,
        accounts=args.accounts,
        seed=args.seed,
        database_url=args.database_url,
    )
    console = Console(stderr=True)
    with Progress(console=console, disable=args.quiet or not console.is_terminal) as progress:
        task = progress.add_task("requests", total=settings.clients * settings.requests_per_client)
        outcome = bench(settings, lambda: progress.advance(task))
    print(report(outcome))
    if args.json is not None:
        write_json(args.json, outcome)
    return 0 if outcome.ok else 1


def _scale(args: argparse.Namespace) -> int:
    from bourse.bench.scale import ScaleSettings, default_out, run_scale  # noqa: PLC0415

    settings = ScaleSettings(
        max_cores=args.max_cores,
        repetitions=args.repetitions,
        bench=BenchSettings(
            clients=args.clients,
            requests_per_client=args.requests_per_client,
            orders_per_request=args.orders_per_request,
            persistent=not args.connection_per_request,
        ),
    )
    out = args.out if args.out is not None else default_out()
    series = (
        [(None, out)]
        if args.workers is None
        else [(workers, out / f"workers-{workers}") for workers in args.workers]
    )
    ok = True
    for workers, directory in series:
        summary = run_scale(replace(settings, workers=workers), directory)
        ok = ok and all(point["ok"] for point in summary["points"])
        print(f"results, summary.json and plots in {directory}")
    return 0 if ok else 1


def _report(args: argparse.Namespace) -> int:
    from bourse.bench.report import write_report  # noqa: PLC0415 - matplotlib is slow

    analysis = args.analysis.read_text() if args.analysis is not None else None
    pages = write_report(args.sources, args.out, analysis)
    print(f"{args.out}: {pages} pages")
    return 0


def _gen(args: argparse.Namespace) -> int:
    from bourse.bench.gen import summary, write_load_files  # noqa: PLC0415

    shape = WorkloadShape(
        accounts=args.accounts,
        symbols=args.symbols,
        requests=args.requests,
        orders_per_request=args.orders_per_request,
        query_share=args.query_share,
        cancel_share=args.cancel_share,
    )
    print(summary(args.out, write_load_files(args.out, shape, args.seed)))
    return 0


def _null_server(args: argparse.Namespace) -> int:
    import uvloop  # noqa: PLC0415

    from bourse.bench.null_server import serve_null  # noqa: PLC0415

    uvloop.run(serve_null(args.host, args.port, fixed=args.fixed))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bourse`` console script. A reader that stops
    early (``bourse bench | head -1``) ends the output quietly, with the
    status a shell gives a command killed by SIGPIPE."""
    try:
        return _run(argv)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the exit flush must not fail again
        return 128 + signal.SIGPIPE


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(
        getattr(args, "log_level", "INFO"),
        json_lines=getattr(args, "log_format", "text") == "json",
        process="engine" if getattr(args, "workers", 0) else "bourse",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    commands = {
        "serve": _serve,
        "bench": _bench,
        "scale": _scale,
        "report": _report,
        "gen": _gen,
        "null-server": _null_server,
        "health": _health,
        "db": _upgrade,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
