"""Supervision of gateway processes (``--workers N``).

A gateway that dies takes its clients' connections with it and is started
again; the engine's death takes the gateways down with it (the server is
gone and its supervisor restarts it); the other gateway's clients never
notice the first case.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator

import psutil  # type: ignore[import-untyped]
import pytest

from tests.e2e.harness import (
    ServerProcess,
    exchange,
    frame_line,
    is_closed,
    read_reply,
    running_server,
)

GATEWAY_STARTED = re.compile(r"gateway (\d+) started \(pid (\d+)\)")
QUERY = b'<transactions id="1"><query id="1"/></transactions>'


@pytest.fixture(scope="module", params=[2], ids=lambda n: f"workers{n}")
def workers(request: pytest.FixtureRequest) -> Iterator[int]:
    """These tests are about gateways: two of them, whatever conftest runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BOURSE_WORKERS", str(request.param))
        yield request.param


def gateway_pids(server: ServerProcess) -> dict[int, int]:
    """The latest pid of each gateway, from the server's log."""
    pids: dict[int, int] = {}
    for line in server.log:
        if found := GATEWAY_STARTED.search(line):
            pids[int(found.group(1))] = int(found.group(2))
    return pids


def serving_gateway(sock: socket.socket, pids: dict[int, int]) -> int:
    """Which gateway holds the server end of ``sock``."""
    client = sock.getsockname()[:2]
    for index, pid in pids.items():
        for connection in psutil.Process(pid).net_connections(kind="tcp"):
            if connection.raddr and tuple(connection.raddr) == client:
                return index
    raise LookupError(f"no gateway holds {client}")


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)


def asks(sock: socket.socket) -> bytes:
    sock.sendall(frame_line(QUERY))
    return read_reply(sock)


def test_a_dead_gateway_closes_its_connections_and_is_started_again(
    server: ServerProcess,
) -> None:
    assert b"<created" in exchange(server, b'<create><account id="1" balance="5"/></create>')
    before = gateway_pids(server)
    assert len(before) == 2
    sockets = [server.connect() for _ in range(12)]
    for sock in sockets:
        assert b"<error" in asks(sock)  # "Order does not exist": the path works
    holders = [serving_gateway(sock, before) for sock in sockets]
    victim = holders[0]
    os.kill(before[victim], signal.SIGKILL)
    for sock, holder in zip(sockets, holders, strict=True):
        if holder == victim:
            assert is_closed(sock, within=5)
        else:
            assert b"Order does not exist" in asks(sock)
        sock.close()
    wait_for(lambda: gateway_pids(server).get(victim, before[victim]) != before[victim])
    after = gateway_pids(server)
    assert psutil.pid_exists(after[victim])
    assert after[1 - victim] == before[1 - victim]
    for _ in range(8):
        assert b"Order does not exist" in exchange(server, QUERY)


def test_the_gateways_exit_when_the_engine_dies(workers: int, database_url: str) -> None:
    with running_server(database_url) as server:
        pids = list(gateway_pids(server).values())
        assert len(pids) == workers
        client = server.connect()
        assert b"<results" in asks(client)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        assert is_closed(client, within=10)

    def gone() -> bool:
        return all(
            not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            for pid in pids
        )

    wait_for(gone)
