"""``bourse serve`` as a child process on a free loopback port, for the
tools that need a real server with its embedded PostgreSQL (the crash
cycles, the scalability experiment): one way to start it, find its ports
(the XML one and the web view's, both picked free so that two never
collide) and its PostgreSQL, and stop it by pid."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from bourse.store.embedded import read_postmaster_info

LISTENING = re.compile(r"bourse listening on [^ ]+:(\d+)")
WEB_LISTENING = re.compile(r"web view on http://[^ ]+:(\d+)/")


class Server:
    """``bourse serve`` in a child process, on a free loopback port."""

    def __init__(self, data_dir: Path, commit_timeout: float, workers: int | None = None) -> None:
        self.data_dir = data_dir
        self.commit_timeout = commit_timeout
        self.workers = workers
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        #: The web view's port (market data, ``/ws``); 0 until started.
        self.http_port = 0

    def start(self) -> None:
        command = [sys.executable, "-m", "bourse.cli", "serve", "--host", "127.0.0.1"]
        command += ["--port", "0", "--http-port", "0", "--data-dir", str(self.data_dir)]
        command += ["--commit-timeout", str(self.commit_timeout)]
        if self.workers is not None:
            command += ["--workers", str(self.workers)]
        self.port = self.http_port = 0
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        self._wait_listening(self.process)

    def _wait_listening(self, process: subprocess.Popen[str]) -> None:
        """Read the log until the server listens (the web view's line comes first)."""
        found = threading.Event()

        def pump() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                if web := WEB_LISTENING.search(line):
                    self.http_port = int(web.group(1))
                match = LISTENING.search(line)
                if match and not found.is_set():
                    self.port = int(match.group(1))
                    found.set()
            found.set()

        threading.Thread(target=pump, daemon=True).start()
        if not found.wait(120) or not self.port:
            raise RuntimeError("bourse serve did not start listening")

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
        info = read_postmaster_info(self.data_dir / "pgdata")
        if info is None:
            raise RuntimeError("no running PostgreSQL in the data directory")
        return info.pid
