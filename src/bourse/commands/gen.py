"""``bourse gen``: write a seeded workload as framed requests any client
can send (the same seed writes the same bytes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bourse.bench.gen import summary, write_load_files
from bourse.bench.workload import WorkloadShape
from bourse.commands.field_options import add_field_options, field_values

#: How many accounts and symbols.
_SIZE = {"accounts": "accounts", "symbols": "symbols"}

#: What each ``<transactions>`` holds.
_MIX = {
    "orders_per_request": "children of each <transactions>",
    "query_share": "share of children that query an earlier order of the account",
    "cancel_share": "share of children that cancel an earlier order of the account",
}


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
    add_field_options(parser, defaults, _SIZE)
    parser.add_argument(
        "--requests",
        type=int,
        default=5000,
        help="<transactions> requests in requests.bin (%(default)s)",
    )
    add_field_options(parser, defaults, _MIX)
    parser.set_defaults(run=_gen)


def _gen(args: argparse.Namespace) -> int:
    shape = WorkloadShape(
        **field_values(args, _SIZE), requests=args.requests, **field_values(args, _MIX)
    )
    print(summary(args.out, write_load_files(args.out, shape, args.seed)))
    return 0
