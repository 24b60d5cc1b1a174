"""``bourse bench --subscribers``: a real server's market-data feed followed
by WebSocket subscribers during the load; every subscriber gets updates of
every symbol with no gap, each dated by its commit, and the order checks
still pass. And the server that ``bourse scale`` and the crash drills
start says where its web view is."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bourse.bench.feed_watch import symbol_seqs
from bourse.bench.server_process import Server
from bourse.cli import main
from tests.databases import public_temp_dir
from tests.e2e.harness import running_server

SUBSCRIBERS = 3


def test_subscribers_follow_the_feed_without_gaps(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "feed.json"
    with running_server(database_url) as server:
        assert server.http_port, "".join(server.log)
        status = main(
            [
                "bench",
                *("--host", "127.0.0.1", "--port", str(server.port)),
                *("--http-port", str(server.http_port), "--subscribers", str(SUBSCRIBERS)),
                *("--accounts", "50", "--clients", "4", "--requests-per-client", "50"),
                *("--database-url", database_url, "--quiet", "--json", str(path)),
            ]
        )
        printed = capsys.readouterr().out
        assert server.stop() == 0, "".join(server.log)
    assert status == 0, printed
    assert "feed: 3 subscribers" in printed
    result = json.loads(path.read_text())
    assert result["checks"]["ok"] is True
    assert result["checks"]["database_problems"] == []
    feed = result["feed"]
    assert feed["ok"] is True, feed["problems"]
    assert feed["subscribers"] == SUBSCRIBERS
    assert feed["fewest_messages"] > 0
    assert feed["messages"] >= SUBSCRIBERS * feed["fewest_messages"]
    assert (feed["gaps"], feed["behind"], feed["malformed"]) == (0, 0, 0)
    assert feed["undated"] == 0
    delays = feed["delay_ms"]
    assert 0 <= delays["min"] <= delays["p50"] <= delays["p99"] <= delays["max"]
    assert result["settings"]["subscribers"] == SUBSCRIBERS


def test_the_bench_server_process_finds_its_web_port() -> None:
    server = Server(public_temp_dir("bourse-bench-web-") / "data", commit_timeout=5.0)
    server.start()
    try:
        assert server.http_port not in (0, server.port, 8080)
        assert asyncio.run(symbol_seqs("127.0.0.1", server.http_port)) == {}
    finally:
        server.stop()
