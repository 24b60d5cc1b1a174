"""The ``bourse`` command: ``bourse serve`` runs the exchange,
``bourse db upgrade`` applies the database migrations, ``bourse bench``
measures a running server, ``bourse scale`` measures how it scales with
cores, ``bourse report`` turns results into a PDF and ``bourse gen``
writes load files for any client.

Every ``serve`` option may also be set through the environment as
``BOURSE_`` followed by the option's name in capitals (``--database-url``
is ``BOURSE_DATABASE_URL``); a command-line option wins over the
environment (``bourse.options``).

Each command's arguments and code are in ``bourse.commands.<name>``, and a
command's module is imported only when that command is parsed: building
every command's arguments up front would import the benchmarks (and, with
them, uvloop and lxml) just to print ``bourse serve --help``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from bourse.logs import configure_logging

#: Each command and its one-line summary, as ``bourse --help`` lists them.
COMMANDS = {
    "serve": "run the exchange server",
    "bench": "measure a running server",
    "scale": "measure throughput and latency against server cores",
    "report": "write a PDF report of results",
    "gen": "write seeded load files (framed requests) for any client",
    "null-server": "a server that only parses and answers",
    "health": "exit 0 if a server answers an empty <create> without an error",
    "db": "database maintenance",
}


class _CommandParser(argparse.ArgumentParser):
    """A command's parser, whose arguments are added by the command's
    module (``add_arguments``) the first time it parses, so that only the
    command being run is imported."""

    def __init__(self, *args: Any, command_module: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._command_module = command_module

    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        if self._command_module is not None:
            importlib.import_module(self._command_module).add_arguments(self)
            self._command_module = None
        return super().parse_known_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``bourse``."""
    parser = argparse.ArgumentParser(
        prog="bourse", description="An exchange matching server speaking XML over TCP."
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_CommandParser)
    for name, summary in COMMANDS.items():
        commands.add_parser(
            name, help=summary, command_module="bourse.commands." + name.replace("-", "_")
        )
    return parser


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
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
