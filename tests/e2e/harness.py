"""A real ``bourse serve`` process and a plain-socket client for it."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # type: ignore[import-untyped]

BOURSE = Path(sys.executable).with_name("bourse")
LISTENING = re.compile(r"bourse listening on [^ ]+:(\d+)")
ADMIN_LISTENING = re.compile(r"admin listener on [^ ]+:(\d+)")
WEB_LISTENING = re.compile(r"web view on http://[^ ]+:(\d+)/")
RESULTS_END = b"</results>\n"


@dataclass
class ServerProcess:
    """A running server: its port and everything it has logged."""

    process: subprocess.Popen[str]
    port: int = 0
    admin_port: int = 0
    http_port: int = 0
    log: list[str] = field(default_factory=list)

    def connect(self, timeout: float = 10.0) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM by pid, then the exit status."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def _pump(server: ServerProcess, listening: threading.Event) -> None:
    assert server.process.stderr is not None
    for line in server.process.stderr:
        server.log.append(line)
        if admin := ADMIN_LISTENING.search(line):
            server.admin_port = int(admin.group(1))
        if web := WEB_LISTENING.search(line):
            server.http_port = int(web.group(1))
        found = LISTENING.search(line)
        if found and not listening.is_set():
            server.port = int(found.group(1))
            listening.set()
    listening.set()


def serve_command(database_url: str | None, *extra: str) -> list[str]:
    """``bourse serve`` on a free loopback port, storing into ``database_url``
    (None: the embedded default, given ``--data-dir`` in ``extra``), the web
    view on a free port unless ``extra`` says otherwise."""
    database = [] if database_url is None else ["--database-url", database_url]
    web = [] if "--http-port" in extra else ["--http-port", "0"]
    return [str(BOURSE), "serve", "--host", "127.0.0.1", "--port", "0", *database, *web, *extra]


@contextmanager
def running_server(database_url: str | None, *extra: str) -> Iterator[ServerProcess]:
    """Start ``serve_command(database_url, *extra)``; kill it afterwards if
    it is still running."""
    with running_command(serve_command(database_url, *extra)) as server:
        yield server


def spawn(
    command: list[str], env: dict[str, str] | None = None
) -> tuple[ServerProcess, threading.Event]:
    """Start ``command`` (a server start); the event is set once it logs
    where it listens (or exits)."""
    process = subprocess.Popen(
        command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    server = ServerProcess(process)
    listening = threading.Event()
    threading.Thread(target=_pump, args=(server, listening), daemon=True).start()
    return server, listening


@contextmanager
def running_command(
    command: list[str], env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    """Run ``command`` (a server start) until it logs where it listens;
    kill it afterwards if it is still running."""
    server, listening = spawn(command, env)
    try:
        if not listening.wait(30) or not server.port:
            raise RuntimeError("server did not start:\n" + "".join(server.log))
        yield server
    finally:
        if server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait()


def frame_line(xml: bytes) -> bytes:
    """The protocol's own framing: decimal length, newline, XML."""
    return str(len(xml)).encode() + b"\n" + xml


def frame_binary(xml: bytes) -> bytes:
    """4-byte little-endian length, newline, XML."""
    return struct.pack("<I", len(xml)) + b"\n" + xml


def read_reply(sock: socket.socket) -> bytes:
    """One whole reply document (up to and including ``</results>``)."""
    data = b""
    while not data.endswith(RESULTS_END):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    return data


def read_replies(sock: socket.socket, count: int) -> list[bytes]:
    """``count`` reply documents, in the order they arrive."""
    data = b""
    while data.count(RESULTS_END) < count:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    parts = data.split(RESULTS_END)
    return [part + RESULTS_END for part in parts[:count]]


def exchange(server: ServerProcess, xml: bytes) -> bytes:
    """Send one request on a new connection and return the reply."""
    with server.connect() as sock:
        sock.sendall(frame_line(xml))
        return read_reply(sock)


def is_closed(sock: socket.socket, within: float) -> bool:
    """True when the server closes ``sock`` within ``within`` seconds."""
    sock.settimeout(within)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return False


def closed_now(sock: socket.socket) -> bool:
    """True if the server has closed ``sock`` (checked without waiting)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(65536, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        return True


def server_memory(server: ServerProcess) -> int:
    """Resident bytes of the server process and its gateways."""
    main = psutil.Process(server.process.pid)
    return sum(process.memory_info().rss for process in [main, *main.children(recursive=True)])
