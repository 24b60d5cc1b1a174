"""Timeouts and shutdown of a real server process."""

from __future__ import annotations

import time

from tests.e2e.harness import frame_line, is_closed, read_reply, running_server

CREATE = b'<create><account id="1" balance="1"/></create>'


def test_idle_connection_is_closed_after_idle_timeout(database_url: str) -> None:
    with running_server(database_url, "--idle-timeout", "0.5") as server:
        with server.connect() as idle, server.connect() as active:
            active.sendall(frame_line(CREATE))
            assert b"<created" in read_reply(active)
            assert is_closed(idle, within=5)
        assert server.stop() == 0


def test_slow_request_gets_an_error_at_the_body_deadline(database_url: str) -> None:
    with running_server(database_url, "--body-timeout", "0.5") as server:
        with server.connect() as slow:
            slow.sendall(frame_line(CREATE)[:10])
            started = time.monotonic()
            reply = read_reply(slow)
            assert b"<error>Request not received in time</error>" in reply
            assert time.monotonic() - started < 5
            assert is_closed(slow, within=5)
        with server.connect() as normal:
            normal.sendall(frame_line(CREATE))
            assert b"<created" in read_reply(normal)


def test_sigterm_stops_cleanly_and_answers_what_was_received(database_url: str) -> None:
    with running_server(database_url) as server:
        with server.connect() as client:
            client.sendall(frame_line(CREATE))
            assert b"<created" in read_reply(client)
            idle = server.connect()
            assert server.stop() == 0
            assert is_closed(idle, within=1)
            assert is_closed(client, within=1)
            idle.close()
        assert any("shutting down" in line for line in server.log)


def test_shutdown_waits_for_a_request_being_received(database_url: str) -> None:
    with running_server(database_url, "--shutdown-grace", "5") as server:
        with server.connect() as client:
            request = frame_line(CREATE)
            client.sendall(request[:20])
            time.sleep(0.2)
            server.process.send_signal(15)
            time.sleep(0.3)
            client.sendall(request[20:])
            assert b"<created" in read_reply(client)
        assert server.process.wait(timeout=10) == 0
