"""The ``bourse`` command: ``bourse serve`` runs the exchange."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from bourse.server.config import DEFAULT_PORT, ServerConfig


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ServerConfig()
    parser.add_argument("--host", default=defaults.host, help="address to listen on (%(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="TCP port; 0 picks a free one (%(default)s)"
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging threshold (%(default)s)",
    )
    parser.add_argument(
        "--max-request-size",
        type=int,
        default=defaults.max_request_size,
        help="largest request in bytes; larger ones are refused (%(default)s)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=defaults.idle_timeout,
        help="seconds a connection may stay silent between requests (%(default)s)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=defaults.body_timeout,
        help="seconds allowed from a request's first byte to its last (%(default)s)",
    )
    parser.add_argument(
        "--shutdown-grace",
        type=float,
        default=defaults.shutdown_grace,
        help="seconds a shutdown waits for requests being received (%(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``bourse``."""
    parser = argparse.ArgumentParser(
        prog="bourse", description="An exchange matching server speaking XML over TCP."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the exchange server")
    _serve_arguments(serve)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from bourse.server.app import run  # noqa: PLC0415 - keeps `--help` fast

    config = ServerConfig(
        host=args.host,
        port=args.port,
        max_request_size=args.max_request_size,
        idle_timeout=args.idle_timeout,
        body_timeout=args.body_timeout,
        shutdown_grace=args.shutdown_grace,
    )
    return run(config)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bourse`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
