"""The log filter, the JSON log format and the readiness endpoint."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

import pytest

from bourse.logs import JsonFormatter, RepeatFilter
from bourse.server.metrics import Metrics, serve_metrics


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("bourse.test", logging.WARNING, __file__, 1, message, args, None)


def test_repeats_of_one_template_are_limited_then_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("bourse.logs.time.monotonic", lambda: now[0])
    repeat = RepeatFilter(limit=3, interval=10.0)
    passed = [repeat.filter(record("client %s not reading", n)) for n in range(10)]
    assert passed == [True] * 3 + [False] * 7
    assert repeat.filter(record("another template"))
    now[0] += 10.0
    later = record("client %s not reading", 11)
    assert repeat.filter(later)
    assert later.getMessage() == "client 11 not reading [7 similar lines suppressed]"


def test_json_lines_carry_the_fields_collectors_need() -> None:
    line = JsonFormatter("gateway-1").format(record("dropping %s", "it"))
    entry = json.loads(line)
    assert entry["message"] == "dropping it"
    assert entry["process"] == "gateway-1"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "bourse.test"


@pytest.mark.parametrize(("ready", "status"), [(True, 200), (False, 503)])
def test_healthz_answers_the_readiness(ready: bool, status: int) -> None:
    server, port = serve_metrics(Metrics(), "127.0.0.1", 0, lambda: ready)
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                got = response.status
        except urllib.error.HTTPError as refused:
            got = refused.code
        assert got == status
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            assert b"bourse_orders_total 0.0" in response.read()
    finally:
        server.shutdown()
        server.server_close()
