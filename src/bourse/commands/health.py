"""``bourse health``: the container's health check. It finds the server the
way the server was configured, through ``serve``'s own options and
``BOURSE_*`` variables (the container gives both the same environment),
plus the probe's: the client certificate it may need and how long it waits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bourse.commands.serve import SERVE_OPTIONS, server_config
from bourse.health import probe
from bourse.options import Declared, Option, add_options

PROBE_OPTIONS = (
    Declared(
        "health_cert",
        Option(
            "client certificate (PEM) the probe presents when the public port requires one", Path
        ),
        None,
    ),
    Declared("health_key", Option("the private key (PEM) of `--health-cert`", Path), None),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``serve``'s options, and the probe's own."""
    parser.description = (
        "Probe the server that serve's options and BOURSE_* variables describe: an empty "
        "<create> on its public port (over TLS if it has a certificate), or, when that port "
        "requires a client certificate the probe lacks, its admin listener or its metrics "
        "/healthz. Exit 0 if healthy."
    )
    add_options(parser, (*SERVE_OPTIONS, *PROBE_OPTIONS))
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the answer (%(default)s)"
    )
    parser.set_defaults(run=_health)


def _health(args: argparse.Namespace) -> int:
    outcome = probe(
        server_config(args), args.timeout, certificate=args.health_cert, key=args.health_key
    )
    if outcome.healthy:
        print(f"healthy: {outcome.detail}")
        return 0
    print(f"unhealthy: {outcome.detail}", file=sys.stderr)
    return 1
