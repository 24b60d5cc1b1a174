"""Cores, data directories and clean stops for measured servers.

A figure "at k cores" is only that if the server and every PostgreSQL
process run on those k cores and the load generator does not (as far as
the machine allows), and a run only stands alone if it starts from an
empty database and leaves no process behind. This is that discipline,
shared by every kind of run ``bourse scale`` makes: pin a process tree
(affinity is per thread on Linux), move the load generator's thread to
the other cores for a while, give each server a fresh data directory
(copied from a template cluster made once, which spares an ``initdb`` per
run), and stop a server by its pid, checking that nothing it had is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from bourse.bench.server_process import Server
from bourse.server.config import ServerConfig
from bourse.store.embedded import read_postmaster_info

STOP_WAIT = 30.0


def usable_cores() -> list[int]:
    """The cores this process may run on, in order."""
    return sorted(os.sched_getaffinity(0))


def split_cores(cores: int) -> tuple[set[int], set[int]]:
    """The server's cores (the first ``cores`` usable ones) and the load
    generator's (the rest, or all of them when none are left)."""
    usable = usable_cores()
    return set(usable[:cores]), set(usable[cores:]) or set(usable)


def pin_pids(pids: list[int], cpus: set[int]) -> None:
    """Pin every thread of every process in ``pids`` to ``cpus``."""
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            for thread in psutil.Process(pid).threads():
                with contextlib.suppress(ProcessLookupError):
                    os.sched_setaffinity(thread.id, cpus)


def server_processes(server: Server) -> list[psutil.Process]:
    """The server and its gateways, its PostgreSQL postmaster and the
    postmaster's children."""
    assert server.process is not None
    main = psutil.Process(server.process.pid)
    return [main, *main.children(recursive=True), *_postgres_processes(server)]


def _postgres_processes(server: Server) -> list[psutil.Process]:
    """PostgreSQL processes running in the server's data directory."""
    info = read_postmaster_info(server.data_dir / "pgdata")
    if info is None:
        return []
    try:
        postmaster = psutil.Process(info.pid)
        return [postmaster, *postmaster.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def pin_server(server: Server, cpus: set[int]) -> list[psutil.Process]:
    """Pin the server and its PostgreSQL to ``cpus``; the processes pinned."""
    processes = server_processes(server)
    pin_pids([process.pid for process in processes], cpus)
    return processes


def stop_server(server: Server, processes: list[psutil.Process]) -> None:
    """SIGTERM the server by pid and wait; every process it had must be gone."""
    server.stop()
    wait_gone([*processes, *_postgres_processes(server)])


def wait_gone(processes: list[psutil.Process]) -> None:
    """Wait for ``processes`` to exit; terminate (by pid) and raise if some do not."""
    _, alive = psutil.wait_procs(processes, timeout=STOP_WAIT)
    if alive:
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
        psutil.wait_procs(alive, timeout=STOP_WAIT)
        pids = ", ".join(str(process.pid) for process in alive)
        raise RuntimeError(f"processes left after the server stopped: {pids}")


@contextlib.contextmanager
def load_affinity(cpus: set[int]) -> Iterator[None]:
    """Run this thread (the load generator, and any process it starts) on
    ``cpus`` for a while."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def _public_temp_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory PostgreSQL's unprivileged user can traverse."""
    parent = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    parent.chmod(0o755)
    try:
        yield parent
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@contextlib.contextmanager
def fresh_data_dir(template: Path | None = None) -> Iterator[Path]:
    """A new data directory: empty, or a copy of ``template`` (owners and
    modes kept, as PostgreSQL requires)."""
    with _public_temp_dir("bourse-scale-") as parent:
        data_dir = parent / "data"
        if template is not None:
            subprocess.run(["cp", "-a", str(template), str(data_dir)], check=True)
        yield data_dir


@contextlib.contextmanager
def template_cluster() -> Iterator[Path]:
    """A data directory whose cluster ``bourse serve`` has created and
    migrated once and stopped cleanly: ``fresh_data_dir`` copies it."""
    with _public_temp_dir("bourse-template-") as parent:
        server = Server(parent / "data", ServerConfig().commit_timeout, workers=0)
        processes: list[psutil.Process] = []
        try:
            server.start()
            processes = server_processes(server)
        finally:
            stop_server(server, processes)
        yield server.data_dir
