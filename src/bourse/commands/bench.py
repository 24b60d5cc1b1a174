"""``bourse bench``: drive a running server with a seeded load, report
throughput and latency, then check through the protocol (and, given a
database URL, in SQL) that nothing was lost; with ``--subscribers N``,
measure the market-data feed's delay to N WebSocket subscribers meanwhile.
``bourse scale`` shares its load-size arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from bourse.bench.feed_watch import FeedUnavailableError
from bourse.bench.run import BenchSettings, bench, report, write_json
from bourse.commands.field_options import add_field_options, field_values

#: Where the server is.
_SERVER = {"host": "server address", "port": "server port"}

#: The size of the load, shared with ``bourse scale``.
_LOAD = {
    "clients": "concurrent clients",
    "requests_per_client": "requests each client sends",
    "orders_per_request": "orders in each <transactions>",
}

#: Who follows the market data meanwhile.
_FEED = {
    "subscribers": "WebSocket subscribers to every symbol during the load, in a process "
    "of their own; 0: none",
    "http_port": "the server's --http-port, where --subscribers connect",
}

#: What the orders are.
_WORKLOAD = {"accounts": "accounts", "seed": "workload seed"}


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """The size of the load, shared by ``bench`` and ``scale``."""
    add_field_options(parser, BenchSettings(), _LOAD)
    parser.add_argument(
        "--connection-per-request",
        action="store_true",
        help="open a new connection for every request (default: persistent connections)",
    )


def load_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The ``BenchSettings`` fields that ``add_load_arguments`` set, by name."""
    return {**field_values(args, _LOAD), "persistent": not args.connection_per_request}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the server is, the load, and what to do with the result."""
    add_field_options(parser, BenchSettings(), _SERVER)
    add_load_arguments(parser)
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open loop: requests per second over all clients, latency measured from each "
        "request's scheduled time (default: closed loop)",
    )
    add_field_options(parser, BenchSettings(), _WORKLOAD)
    add_field_options(parser, BenchSettings(), _FEED)
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
        **field_values(args, _SERVER),
        **load_settings(args),
        **field_values(args, _WORKLOAD),
        **field_values(args, _FEED),
        rate=args.rate,
        database_url=args.database_url,
    )
    console = Console(stderr=True)
    with Progress(console=console, disable=args.quiet or not console.is_terminal) as progress:
        task = progress.add_task("requests", total=settings.clients * settings.requests_per_client)
        try:
            outcome = bench(settings, lambda: progress.advance(task))
        except FeedUnavailableError as error:
            print(f"bourse bench: {error}", file=sys.stderr)
            return 1
    print(report(outcome))
    if args.json is not None:
        write_json(args.json, outcome)
    return 0 if outcome.ok else 1
