"""Metrics, readiness and logs of a real server (docs/security.md).

The metrics endpoint is scraped while load runs, and what it reports at
the end must agree with what the clients saw."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import ServerProcess, exchange, frame_line, read_replies, running_server

METRICS_AT = re.compile(r"metrics on http://[^ ]+:(\d+)/metrics")
SELLERS = 4
ROUNDS = 25


def metrics_url(server: ServerProcess, path: str = "/metrics") -> str:
    for line in server.log:
        if found := METRICS_AT.search(line):
            return f"http://127.0.0.1:{found.group(1)}{path}"
    raise LookupError("no metrics line in the log")


def scrape(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint, keyed by name and sorted labels."""
    with urllib.request.urlopen(metrics_url(server), timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def trade(server: ServerProcess) -> tuple[int, int, int]:
    """Sellers rest one share each round, a buyer takes it: orders opened,
    fills made, requests applied, as the clients saw them."""
    accounts = "".join(f'<account id="{n}" balance="1000"/>' for n in range(1, SELLERS + 2))
    positions = "".join(f'<account id="{n}">1000</account>' for n in range(1, SELLERS + 1))
    created = exchange(
        server, f'<create>{accounts}<symbol sym="M">{positions}</symbol></create>'.encode()
    )
    assert created.count(b"<created") == 2 * SELLERS + 1
    sell = [
        f'<transactions id="{n}"><order sym="M" amount="-1" limit="1"/></transactions>'.encode()
        for n in range(1, SELLERS + 1)
    ]
    buyer = SELLERS + 1
    buy = f'<transactions id="{buyer}"><order sym="M" amount="{SELLERS}" limit="1"/>'.encode()
    buy += b"</transactions>"
    opened = 0
    with server.connect() as sock:
        for _ in range(ROUNDS):
            requests = [*sell, buy]
            sock.sendall(b"".join(frame_line(request) for request in requests))
            opened += sum(reply.count(b"<opened") for reply in read_replies(sock, len(requests)))
    return opened, ROUNDS * SELLERS, 1 + ROUNDS * (SELLERS + 1)


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "metrics never caught up"
        time.sleep(0.2)


def test_metrics_during_load_agree_with_the_clients(database_url: str) -> None:
    with running_server(database_url, "--metrics-port", "0") as server:
        seen: list[float] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                seen.append(value(scrape(server), "bourse_orders_total"))
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            opened, fills, applied = trade(server)
            with server.connect() as sock:
                sock.sendall(frame_line(b"<create>") * 3)  # three malformed requests
                read_replies(sock, 3)
        finally:
            done.set()
            watcher.join()
        assert seen == sorted(seen), "a counter went backwards during the load"
        assert opened == ROUNDS * (SELLERS + 1)

        def agrees() -> bool:
            samples = scrape(server)
            return (
                value(samples, "bourse_orders_total") == opened
                and value(samples, "bourse_fills_total") == fills
                and value(samples, "bourse_requests_total", outcome="applied") == applied
                and value(samples, "bourse_requests_total", outcome="refused") == 3
                and value(samples, "bourse_errors_total", code="MALFORMED_XML") == 3
                and value(samples, "bourse_connections_accepted_total") >= 3
                and value(samples, "bourse_connections") == 0  # every client has left
            )

        eventually(agrees)
        samples = scrape(server)
        assert value(samples, "bourse_batch_requests_count") >= 1
        assert value(samples, "bourse_batch_requests_sum") == applied
        assert value(samples, "bourse_commit_seconds_count") == value(
            samples, "bourse_batch_requests_count"
        )
        assert server.stop() == 0


def test_healthz_says_ready(database_url: str) -> None:
    with running_server(database_url, "--metrics-port", "0") as server:
        with urllib.request.urlopen(metrics_url(server, "/healthz"), timeout=10) as response:
            assert response.status == 200
            assert response.read() == b"ready\n"
        assert server.stop() == 0


def test_json_logs_are_one_object_per_line(database_url: str) -> None:
    with running_server(database_url, "--log-format", "json") as server:
        exchange(server, b"<create></create>")
        assert server.stop() == 0
    entries = [json.loads(line) for line in server.log]
    assert entries
    assert all(
        {"time", "level", "logger", "process", "message"} <= entry.keys() for entry in entries
    )
    assert any("bourse listening on" in entry["message"] for entry in entries)
