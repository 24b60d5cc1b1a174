"""``bourse serve`` as a child process on a free loopback port, for the
tools that need a real server, with its embedded PostgreSQL (the crash
cycles, the scalability experiment) or on a database URL (the failover
drills): one way to start it, find its ports (the XML one and the web
view's, both picked free so that two never collide) and its PostgreSQL,
keep what it logged, and stop it by pid."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from bourse.store.embedded import libpq_url, read_postmaster_info

LISTENING = re.compile(r"bourse listening on [^ ]+:(\d+)")
WEB_LISTENING = re.compile(r"web view on http://[^ ]+:(\d+)/")


class Server:
    """``bourse serve`` in a child process, on a free loopback port, storing
    into the embedded PostgreSQL of ``data_dir`` or, given ``database_url``
    instead, into that database; ``options`` are more ``serve`` options."""

    def __init__(
        self,
        data_dir: Path | None,
        commit_timeout: float,
        workers: int | None = None,
        *,
        database_url: str | None = None,
        options: Sequence[str] = (),
    ) -> None:
        if (data_dir is None) == (database_url is None):
            raise ValueError("a server stores into a data directory or a database URL")
        self._data_dir = data_dir
        self.database_url = database_url
        self.commit_timeout = commit_timeout
        self.workers = workers
        self.options = list(options)
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        #: The web view's port (market data, ``/ws``); 0 until started.
        self.http_port = 0
        #: Every line the server has logged, across its starts.
        self.log: list[str] = []

    @property
    def data_dir(self) -> Path:
        """The embedded PostgreSQL's data directory."""
        if self._data_dir is None:
            raise RuntimeError(f"this server stores into {self.database_url}, not a data directory")
        return self._data_dir

    def store_url(self) -> str:
        """Where the server stores: its database URL, or its embedded
        PostgreSQL's while that runs."""
        if self.database_url is not None:
            return self.database_url
        info = read_postmaster_info(self.data_dir / "pgdata")
        if info is None:
            raise RuntimeError("no running PostgreSQL in the data directory")
        return libpq_url(info)

    def start(self) -> None:
        command = [sys.executable, "-m", "bourse.cli", "serve", "--host", "127.0.0.1"]
        command += ["--port", "0", "--http-port", "0", *self._database_options()]
        command += ["--commit-timeout", str(self.commit_timeout), *self.options]
        if self.workers is not None:
            command += ["--workers", str(self.workers)]
        self.port = self.http_port = 0
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        self._wait_listening(self.process)

    def _database_options(self) -> list[str]:
        if self.database_url is not None:
            return ["--database-url", self.database_url]
        return ["--data-dir", str(self.data_dir)]

    def _wait_listening(self, process: subprocess.Popen[str]) -> None:
        """Read the log until the server listens (the web view's line comes
        first), and keep reading it into ``log``."""
        found = threading.Event()

        def pump() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                self.log.append(line)
                if web := WEB_LISTENING.search(line):
                    self.http_port = int(web.group(1))
                match = LISTENING.search(line)
                if match and not found.is_set():
                    self.port = int(match.group(1))
                    found.set()
            found.set()

        threading.Thread(target=pump, daemon=True).start()
        if not found.wait(120) or not self.port:
            tail = "".join(self.log[-20:])
            raise RuntimeError(f"bourse serve did not start listening; its log ends:\n{tail}")

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signum)

    def wait_dead(self) -> None:
        if self.process is not None:
            self.process.wait(timeout=60)

    def stop(self) -> None:
        self.signal(signal.SIGTERM)
        if self.process is not None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(timeout=30)

    def postgres_pid(self) -> int:
        """The embedded PostgreSQL's postmaster."""
        info = read_postmaster_info(self.data_dir / "pgdata")
        if info is None:
            raise RuntimeError("no running PostgreSQL in the data directory")
        return info.pid
