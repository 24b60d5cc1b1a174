"""``bourse serve``: run the exchange. Its options are ``ServerConfig``'s
fields, declared there once (``bourse.options``), plus the log level;
``bourse health`` and ``bourse db upgrade`` take theirs from here, so all
three read the same flags and ``BOURSE_*`` variables.
"""

from __future__ import annotations

import argparse
import sys

from bourse.options import Declared, OneOf, Option, add_options, declared_options
from bourse.server.config import ServerConfig

#: The options that are ``ServerConfig`` fields.
CONFIG_OPTIONS = declared_options(ServerConfig)

LOG_LEVEL = Declared(
    "log_level",
    Option(
        "logging threshold: `DEBUG`, `INFO`, `WARNING` or `ERROR`",
        OneOf("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
    "INFO",
)

#: Every option of ``bourse serve``, in the order ``--help`` and the README list them.
SERVE_OPTIONS = (*CONFIG_OPTIONS, LOG_LEVEL)

#: What ``bourse db upgrade`` needs: which database.
DATABASE_OPTIONS = tuple(
    declared for declared in CONFIG_OPTIONS if declared.name in {"database_url", "data_dir"}
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``bourse serve``'s options."""
    add_options(parser, SERVE_OPTIONS)
    parser.set_defaults(run=_serve)


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The configuration that ``serve``'s options in ``args`` describe."""
    return ServerConfig(
        **{declared.name: getattr(args, declared.name) for declared in CONFIG_OPTIONS}
    )


def _serve(args: argparse.Namespace) -> int:
    # Imported here: ``health`` and ``db upgrade`` use this module's options
    # without the server, and ``bourse serve --help`` stays fast.
    from bourse.server.app import configuration_problem, run  # noqa: PLC0415

    config = server_config(args)
    problem = configuration_problem(config)
    if problem is not None:
        print(f"bourse serve: {problem}", file=sys.stderr)
        return 2
    return run(config)
