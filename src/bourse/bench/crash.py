"""Crash cycles: load the exchange, kill something, restart, check nothing
acknowledged was lost.

Each cycle starts ``bourse serve`` (embedded PostgreSQL in a data directory
that survives the cycles), drives it with pipelined clients and
one-request-per-connection clients, and in the middle of the load applies
one fault, in rotation: ``kill -9`` of the server, ``kill -9`` of its
PostgreSQL, a ``SIGSTOP`` of PostgreSQL long enough for commits to time
out, a ``SIGSTOP`` then ``kill -9`` of the server. Then it restarts what is
down and checks, through the protocol and in SQL, that every order, fill
and cancel a client saw acknowledged is still there and answered the same,
that every acknowledged order is in the ``orders`` table as placed (once
the journal is projected), and that cash and shares are conserved (the
clients and those checks are ``acknowledged``).

``python -m bourse.bench.crash --cycles 50`` runs the long version; the
test suite runs a few cycles of the same code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bourse.bench.acknowledged import (
    Acknowledged,
    Client,
    absent_orders,
    audit,
    create_accounts,
    served_at,
    trade_around,
    verify,
)
from bourse.bench.cluster_node import freeze, thaw
from bourse.bench.server_process import Server
from bourse.store.embedded import read_postmaster_info

__all__ = [
    "FAULTS",
    "CrashReport",
    "drill_arguments",
    "freeze",
    "main",
    "run_crash_cycles",
    "scratch_dir",
    "thaw",
]

FAULTS = ("kill-server", "kill-postgres", "stop-postgres", "stop-then-kill-server")

#: A request any exchange that serves answers (with an error: account 0 does not exist).
PROBE = b'<transactions id="0"><query id="1"/></transactions>'


# one cycle


async def _load_until_fault(
    server: Server, clients: list[Client], fault: str, rng: random.Random
) -> None:
    await trade_around(
        server.port,
        clients,
        rng.uniform(0.3, 1.5),
        lambda: asyncio.to_thread(_apply_fault, server, fault),
        settle=server.commit_timeout * 4 + 30,
    )


def _apply_fault(server: Server, fault: str) -> None:
    if fault == "kill-server":
        server.signal(signal.SIGKILL)
        server.wait_dead()
    elif fault == "kill-postgres":
        os.kill(server.postgres_pid(), signal.SIGKILL)
        time.sleep(1.0)
    elif fault == "stop-postgres":
        frozen = freeze(server.postgres_pid())
        time.sleep(server.commit_timeout + 1.0)
        thaw(frozen)
    elif fault == "stop-then-kill-server":
        server.signal(signal.SIGSTOP)
        time.sleep(0.5)
        server.signal(signal.SIGKILL)
        server.wait_dead()


async def _check(server: Server, seen: Acknowledged) -> list[str]:
    """Every check of a cycle: the protocol's answers, the books balanced,
    every acknowledged order in the tables."""
    stored = await absent_orders(server.store_url(), seen)
    return await verify(server, seen) + await audit(server) + stored


def _restart_if_down(server: Server) -> None:
    if server.process is None or server.process.poll() is not None:
        server.start()


async def _wait_available(server: Server, within: float = 120.0) -> None:
    """Wait until the exchange has recovered and answers again."""
    if await served_at(server.port, lambda: PROBE, within) is None:
        raise RuntimeError("the exchange did not recover")


# the run


@dataclass(slots=True)
class CrashReport:
    """What a run of crash cycles did and found."""

    cycles: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    acknowledged_requests: int = 0
    acknowledged_orders: int = 0
    problems: list[str] = field(default_factory=list)


async def run_crash_cycles(
    cycles: int,
    data_dir: Path,
    *,
    clients: int = 8,
    seed: int = 1,
    commit_timeout: float = 2.0,
    workers: int | None = None,
) -> CrashReport:
    """Run ``cycles`` fault cycles against a server storing in ``data_dir``
    (``workers``: the server's ``--workers``; None leaves its default)."""
    rng = random.Random(seed)
    seen = Acknowledged()
    people = [Client(str(9000 + i), seen, random.Random(rng.random())) for i in range(clients)]
    server = Server(data_dir, commit_timeout, workers)
    report = CrashReport()
    server.start()
    try:
        await create_accounts(server, people)
        for cycle in range(cycles):
            fault = FAULTS[cycle % len(FAULTS)]
            await _load_until_fault(server, people, fault, rng)
            _restart_if_down(server)
            await _wait_available(server)
            problems = await _check(server, seen)
            report.cycles += 1
            report.faults[fault] = report.faults.get(fault, 0) + 1
            report.problems.extend(f"cycle {cycle} ({fault}): {p}" for p in problems)
            print(
                f"cycle {cycle + 1}/{cycles} {fault}: {seen.requests} requests and "
                f"{len(seen.orders)} orders acknowledged so far, {len(problems)} problems",
                flush=True,
            )
    finally:
        server.stop()
        _stop_postgres(data_dir)
    report.acknowledged_requests = seen.requests
    report.acknowledged_orders = len(seen.orders)
    return report


def _stop_postgres(data_dir: Path) -> None:
    """Stop the embedded PostgreSQL left behind, by its pid."""
    info = read_postmaster_info(data_dir / "pgdata")
    if info is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGCONT)
            os.kill(info.pid, signal.SIGTERM)


def scratch_dir(prefix: str) -> Path:
    """A new directory under /tmp that an unprivileged PostgreSQL can
    traverse (run as root, the drills' PostgreSQL runs as another user)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def drill_arguments(description: str, cycles: int) -> argparse.ArgumentParser:
    """The options every fault drill takes (``cycles``: the default count)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cycles", type=int, default=cycles)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workers", type=int, default=None, help="the server's --workers (default: its own)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m bourse.bench.crash``: run crash cycles and report."""
    args = drill_arguments(__doc__.split("\n\n")[0], cycles=50).parse_args(argv)
    data_dir = scratch_dir("bourse-crash-") / "data"
    report = asyncio.run(
        run_crash_cycles(
            args.cycles, data_dir, clients=args.clients, seed=args.seed, workers=args.workers
        )
    )
    print(
        f"{report.cycles} cycles ({report.faults}); {report.acknowledged_requests} requests and "
        f"{report.acknowledged_orders} orders acknowledged; {len(report.problems)} problems"
    )
    for problem in report.problems[:50]:
        print("  " + problem)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
