"""The embedded PostgreSQL against real servers: start, restart, adoption after kill -9,
one owner at a time, stale pid files, a stopped orphan. No mocks.

Data directories live under a mkdtemp directory in /tmp made 0755, because pytest's
tmp_path parents are 0700 and, as root, PostgreSQL runs as an unprivileged user that must
traverse them. Servers left behind are stopped by pid (found through postmaster.pid and
the processes working in the data directory), never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import psycopg
import pytest

from bourse.store.embedded import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    read_postmaster_info,
)

REPO = Path(__file__).resolve().parents[2]

OWNER_SCRIPT = """
import sys, time
from pathlib import Path
from bourse.store.embedded import EmbeddedPostgres
print(EmbeddedPostgres(Path(sys.argv[1])).start(), flush=True)
time.sleep(600)
"""


# -- processes -------------------------------------------------------------------------


def postmasters(pgdata: Path) -> set[int]:
    """Pids of the postmasters working in ``pgdata`` (postgres processes whose parent isn't)."""
    serving: dict[int, int] = {}
    for process in psutil.process_iter():
        try:
            if process.name() == "postgres" and Path(process.cwd()).resolve() == pgdata.resolve():
                serving[process.pid] = process.ppid()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return {pid for pid, parent in serving.items() if parent not in serving}


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def postmaster_pid(data_dir: Path) -> int:
    info = read_postmaster_info(data_dir / "pgdata")
    assert info is not None
    return info.pid


def kill_servers(data_dir: Path) -> None:
    """Stop by pid every postmaster of ``data_dir``: continue it, fast shutdown, then kill."""
    pgdata = data_dir / "pgdata"
    pids = postmasters(pgdata)
    info = read_postmaster_info(pgdata)
    if info is not None and alive(info.pid):
        pids.add(info.pid)
    for pid in pids:
        for sig in (signal.SIGCONT, signal.SIGINT):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def dead_pid() -> int:
    """The pid of a process that has exited."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def spawn_owner(data_dir: Path) -> subprocess.Popen[str]:
    """A child Python process that starts the embedded server, prints its URL and sleeps."""
    child = subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT, str(data_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    url = child.stdout.readline().strip()
    assert url.startswith("postgresql://"), f"owner process failed (exit {child.poll()})"
    return child


def orphan_server(data_dir: Path) -> int:
    """Start a server in a child process, SIGKILL the child, return the orphan's pid."""
    child = spawn_owner(data_dir)
    pid = postmaster_pid(data_dir)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert alive(pid)
    return pid


def select_one(url: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT 1").fetchone()
    assert row is not None
    return int(row[0])


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_dir() -> Iterator[Path]:
    """A world-searchable directory in /tmp for this module's data directories."""
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="bourse-embedded-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for data_dir in path.iterdir():
            kill_servers(data_dir)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_cluster(base_dir: Path) -> Path:
    """A data directory with an initialised cluster, shared by tests (each leaves it stopped)."""
    data_dir = base_dir / "shared"
    server = EmbeddedPostgres(data_dir)
    server.start()
    server.stop()
    return data_dir


@pytest.fixture
def cluster(shared_cluster: Path) -> Iterator[Path]:
    """The shared cluster, with any server a test leaves behind stopped by pid afterwards."""
    try:
        yield shared_cluster
    finally:
        kill_servers(shared_cluster)


# -- tests -----------------------------------------------------------------------------


def test_fresh_start_creates_a_cluster_and_restart_keeps_the_data(base_dir: Path) -> None:
    data_dir = base_dir / "fresh"
    server = EmbeddedPostgres(data_dir)
    try:
        url = server.start()
        assert (data_dir / "pgdata" / "PG_VERSION").exists()
        assert data_dir.stat().st_mode & 0o777 == 0o700
        assert f"host={data_dir / 'socket'}" in url
        assert select_one(url) == 1
        with psycopg.connect(url) as connection:
            assert connection.execute("SHOW listen_addresses").fetchone() == ("",)
            assert connection.execute("SHOW fsync").fetchone() == ("on",)
            assert connection.execute("SHOW synchronous_commit").fetchone() == ("on",)
            assert connection.execute("SHOW server_encoding").fetchone() == ("UTF8",)
            connection.execute("CREATE TABLE kept (v text)")
            connection.execute("INSERT INTO kept VALUES ('still here')")
        server.stop()

        url = server.start()
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT v FROM kept").fetchall() == [("still here",)]
    finally:
        server.stop()
    assert postmasters(data_dir / "pgdata") == set()


def test_stop_is_idempotent_and_stops_the_server(cluster: Path) -> None:
    EmbeddedPostgres(cluster).stop()  # never started: nothing to do
    server = EmbeddedPostgres(cluster)
    server.start()
    pid = server.postmaster_pid
    assert pid is not None
    assert pid == postmaster_pid(cluster)
    server.stop()
    assert not alive(pid)
    assert not (cluster / "pgdata" / "postmaster.pid").exists()
    assert server.url is None
    server.stop()
    assert postmasters(cluster / "pgdata") == set()


def test_a_second_owner_is_refused_with_the_holders_pid(cluster: Path) -> None:
    first = EmbeddedPostgres(cluster)
    url = first.start()
    try:
        with pytest.raises(EmbeddedPostgresError, match=rf"pid {os.getpid()}\b"):
            EmbeddedPostgres(cluster).start()
        assert select_one(url) == 1
        assert postmasters(cluster / "pgdata") == {first.postmaster_pid}
    finally:
        first.stop()
    with EmbeddedPostgres(cluster) as url:  # the lock was released
        assert select_one(url) == 1


def test_after_kill_9_of_the_owner_the_next_start_adopts_the_orphan(cluster: Path) -> None:
    child = spawn_owner(cluster)
    try:
        pid = postmaster_pid(cluster)
        with pytest.raises(EmbeddedPostgresError, match=rf"pid {child.pid}\b"):
            EmbeddedPostgres(cluster).start()  # the owner is alive: refused across processes
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert alive(pid), "PostgreSQL outlives its owner"

    server = EmbeddedPostgres(cluster)
    try:
        url = server.start()
        assert server.postmaster_pid == pid
        assert postmaster_pid(cluster) == pid
        assert postmasters(cluster / "pgdata") == {pid}
        assert select_one(url) == 1
    finally:
        server.stop()
    assert not alive(pid)


def test_a_stopped_orphan_is_an_error_and_no_second_server_starts(cluster: Path) -> None:
    pid = orphan_server(cluster)
    os.kill(pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        with pytest.raises(EmbeddedPostgresError, match=rf"pid {pid}\).*did not accept"):
            EmbeddedPostgres(cluster, timeout=2).start()
        assert time.monotonic() - began < 8
        assert postmasters(cluster / "pgdata") == {pid}
        assert postmaster_pid(cluster) == pid
    finally:
        os.kill(pid, signal.SIGCONT)
    server = EmbeddedPostgres(cluster)  # the failed start released the lock
    try:
        server.start()
        assert server.postmaster_pid == pid
    finally:
        server.stop()
    assert not alive(pid)


def test_a_server_that_cannot_start_raises_with_the_log_tail(cluster: Path) -> None:
    auto_conf = cluster / "pgdata" / "postgresql.auto.conf"
    saved = auto_conf.read_text()
    auto_conf.write_text(saved + "shared_buffers = 'plenty'\n")
    try:
        with pytest.raises(EmbeddedPostgresError, match=r"(?s)did not start.*last lines.*plenty"):
            EmbeddedPostgres(cluster).start()
    finally:
        auto_conf.write_text(saved)
    assert postmasters(cluster / "pgdata") == set()
    with EmbeddedPostgres(cluster) as url:  # the failed start released the lock
        assert select_one(url) == 1


def test_a_stale_postmaster_pid_does_not_prevent_a_start(cluster: Path) -> None:
    pid_file = cluster / "pgdata" / "postmaster.pid"
    with EmbeddedPostgres(cluster):
        lines = pid_file.read_text().splitlines()
    stale = dead_pid()
    pid_file.write_text("\n".join([str(stale), *lines[1:]]) + "\n")
    assert not alive(stale)

    server = EmbeddedPostgres(cluster)
    try:
        url = server.start()
        assert server.postmaster_pid not in (None, stale)
        assert select_one(url) == 1
    finally:
        server.stop()


def test_a_pid_file_naming_an_unrelated_live_process_does_not_prevent_a_start(
    cluster: Path,
) -> None:
    pid_file = cluster / "pgdata" / "postmaster.pid"
    with EmbeddedPostgres(cluster):
        lines = pid_file.read_text().splitlines()
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        pid_file.write_text("\n".join([str(stranger.pid), *lines[1:]]) + "\n")
        with EmbeddedPostgres(cluster) as url:
            assert select_one(url) == 1
            assert postmaster_pid(cluster) != stranger.pid
        assert stranger.poll() is None, "the unrelated process is left alone"
    finally:
        stranger.kill()
        stranger.wait()


def test_a_long_data_dir_puts_the_socket_in_a_private_temp_dir(base_dir: Path) -> None:
    data_dir = base_dir / ("long-" + "x" * 100) / "data"
    server = EmbeddedPostgres(data_dir)
    info = None
    try:
        url = server.start()
        info = read_postmaster_info(data_dir / "pgdata")
        assert info is not None
        assert info.socket_dir is not None
        assert info.socket_dir.parent == Path(tempfile.gettempdir())
        assert info.socket_dir.name.startswith("bourse-pg-")
        assert info.socket_dir.stat().st_mode & 0o777 == 0o700
        assert select_one(url) == 1
    finally:
        server.stop()
        if info is not None and info.socket_dir is not None:
            shutil.rmtree(info.socket_dir, ignore_errors=True)


def test_a_non_empty_foreign_directory_is_refused(base_dir: Path) -> None:
    data_dir = base_dir / "foreign"
    data_dir.mkdir()
    (data_dir / "notes.txt").write_text("not a database")
    with pytest.raises(EmbeddedPostgresError, match="holds no bourse database"):
        EmbeddedPostgres(data_dir).start()
    assert sorted(p.name for p in data_dir.iterdir()) == ["notes.txt"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands PostgreSQL to another user")
def test_as_root_unsearchable_parents_are_refused_and_left_alone() -> None:
    private = Path(tempfile.mkdtemp(dir="/tmp", prefix="bourse-private-"))  # 0700, root's
    try:
        with pytest.raises(EmbeddedPostgresError, match="world-searchable"):
            EmbeddedPostgres(private / "data").start()
        assert private.stat().st_mode & 0o777 == 0o700
    finally:
        shutil.rmtree(private)
