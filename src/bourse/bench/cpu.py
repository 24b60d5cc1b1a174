"""Where a run's CPU goes: the load client, the gateways, the engine
process, PostgreSQL (or the parse-and-answer null server), in seconds.

Throughput alone cannot say why a server stops scaling; the CPU each part
spends per order can (which part runs out of cores first, what a next core
would buy). So every run reads the CPU time of each process it knows, by
role, twice: around the whole bench (setup and checks included, as
``bourse scale`` always recorded) and around the timed load alone, from
its first reply to its last (``LoadWindow``, the figures per order are
taken from). Processes are found again at each reading, so PostgreSQL
backends opened meanwhile are counted; a process that started inside the
window counts from zero.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import psutil  # type: ignore[import-untyped]

#: The roles a process can have, in the order figures stack them.
ROLES = ("client", "gateways", "engine", "postgres", "null_server")

#: A reading: pid → (role, CPU seconds so far).
Reading = dict[int, tuple[str, float]]


@dataclass(frozen=True, slots=True)
class RunProcesses:
    """Which processes a run has: the server's main process (its children
    are gateways) and, for the exchange, its PostgreSQL postmaster. This
    process and its other descendants (the subscriber process) are the
    load client."""

    main_pid: int
    postmaster_pid: int | None = None
    #: The main process's role: ``engine``, or ``null_server``.
    main_role: str = "engine"

    def roles(self) -> dict[int, str]:
        """Every live process of the run, by pid, with its role."""
        found: dict[int, str] = {os.getpid(): "client"}
        for child in _descendants(os.getpid()):
            found[child] = "client"
        found[self.main_pid] = self.main_role
        for child in _descendants(self.main_pid):
            found[child] = "gateways"
        if self.postmaster_pid is not None:
            found[self.postmaster_pid] = "postgres"
            for child in _descendants(self.postmaster_pid):
                found[child] = "postgres"
        return found

    def read(self) -> Reading:
        """The CPU seconds (user + system) each process has used so far."""
        reading: Reading = {}
        for pid, role in self.roles().items():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                times = psutil.Process(pid).cpu_times()
                reading[pid] = (role, times.user + times.system)
        return reading


def _descendants(pid: int) -> list[int]:
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def spent(before: Reading, after: Reading) -> dict[str, float]:
    """CPU seconds per role between two readings (every role present)."""
    totals = dict.fromkeys(ROLES, 0.0)
    for pid, (role, seconds) in after.items():
        totals[role] += max(0.0, seconds - before.get(pid, (role, 0.0))[1])
    return totals


def busiest(before: Reading, after: Reading) -> dict[str, float]:
    """Per role, the CPU seconds of its busiest single process: a role whose
    busiest process used the whole window is bound to one core."""
    most = dict.fromkeys(ROLES, 0.0)
    for pid, (role, seconds) in after.items():
        most[role] = max(most[role], seconds - before.get(pid, (role, 0.0))[1])
    return most


@dataclass(slots=True)
class LoadWindow:
    """Reads the CPU at the load's first reply and at its last (an
    ``on_reply`` hook of the bench); ``expected`` replies make the load."""

    processes: RunProcesses
    expected: int
    replies: int = 0
    readings: list[tuple[float, Reading]] = field(default_factory=list)

    def on_reply(self) -> None:
        """Count a reply; read the CPU at the first and at the last."""
        self.replies += 1
        if self.replies in {1, self.expected}:
            self.readings.append((time.perf_counter(), self.processes.read()))

    def result(self, fallback: tuple[Reading, Reading, float]) -> dict[str, Any]:
        """The window's figures; the whole bench's (``fallback``: before,
        after, seconds) when the load ended without every reply."""
        if len(self.readings) == 2:  # the first reply and the last
            (start, before), (end, after) = self.readings
            seconds, window = end - start, "load"
        else:
            before, after, seconds = fallback
            window = "whole bench"
        return {
            "window": window,
            "seconds": seconds,
            "roles": spent(before, after),
            "busiest": busiest(before, after),
        }
