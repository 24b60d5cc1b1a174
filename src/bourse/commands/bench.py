"""``bourse bench``: drive a running server with a seeded load, report
throughput and latency, then check through the protocol (and, given a
database URL, in SQL) that nothing was lost. ``bourse scale`` shares its
load-size arguments.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from bourse.bench.run import BenchSettings, bench, report, write_json


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument(
        "--connection-per-request",
        action="store_true",
        help="open a new connection for every request (default: persistent connections)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the server is, the load, and what to do with the result."""
    defaults = BenchSettings()
    parser.add_argument("--host", default=defaults.host, help="server address (%(default)s)")
    parser.add_argument("--port", type=int, default=defaults.port, help="server port (%(default)s)")
    add_load_arguments(parser)
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
    parser.set_defaults(run=_bench)


def _bench(args: argparse.Namespace) -> int:
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
