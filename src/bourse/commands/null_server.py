"""``bourse null-server``: a server that only parses and answers (or, with
``--fixed``, answers without parsing): the yardstick the real server's
throughput is compared with, and the load client's own ceiling.
"""

from __future__ import annotations

import argparse

import uvloop

from bourse.bench.null_server import serve_null


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Where it listens, and whether it parses at all."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    parser.add_argument("--port", type=int, default=12346, help="TCP port (%(default)s)")
    parser.add_argument(
        "--fixed",
        action="store_true",
        help="answer a constant <opened> per order without parsing (measures the client)",
    )
    parser.set_defaults(run=_null_server)


def _null_server(args: argparse.Namespace) -> int:
    uvloop.run(serve_null(args.host, args.port, fixed=args.fixed))
    return 0
