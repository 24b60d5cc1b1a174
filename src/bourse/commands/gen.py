"""``bourse gen``: write a seeded workload as framed requests any client
can send (the same seed writes the same bytes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bourse.bench.gen import summary, write_load_files
from bourse.bench.workload import WorkloadShape


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Where to write, the seed, and the shape of the workload."""
    defaults = WorkloadShape()
    parser.description = (
        "Write setup.bin (framed <create> requests), requests.bin (framed <transactions> "
        "requests) and manifest.json. Queries and cancels name order ids assuming the setup "
        "and then the stream are applied alone, in file order, to a fresh exchange."
    )
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
    parser.set_defaults(run=_gen)


def _gen(args: argparse.Namespace) -> int:
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
