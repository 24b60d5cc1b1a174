"""A cold standby bourse on the same database: it stays out of the way
while the first one writes, and takes over, with everything acknowledged,
once the first is gone.

Runs against both clusters (embedded and external) with real processes.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from lxml import etree

from tests.e2e.harness import exchange, running_server, serve_command, spawn

pytestmark = pytest.mark.timeout(180)


def _logged(lines: list[str], text: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if any(text in line for line in lines):
            return True
        time.sleep(0.05)
    return False


def _attribute(reply: bytes, path: str, name: str) -> str | None:
    element = etree.fromstring(reply).find(path)
    return None if element is None else element.get(name)


def test_a_standby_bourse_waits_for_the_lock_then_serves_what_was_acknowledged(
    database_url: str,
) -> None:
    with running_server(database_url, "--workers", "0") as first:
        exchange(
            first,
            b'<create><account id="1" balance="1000"/>'
            b'<symbol sym="SPY"><account id="1">5</account></symbol></create>',
        )
        placed = exchange(
            first, b'<transactions id="1"><order sym="SPY" amount="10" limit="5"/></transactions>'
        )
        order_id = _attribute(placed, "opened", "id")
        assert order_id is not None, placed
        second, listening = spawn(serve_command(database_url, "--workers", "0"))
        try:
            assert _logged(second.log, "standing by: another bourse writes", 30), second.log
            assert not listening.is_set()  # it does not serve while the first one writes
            os.kill(first.process.pid, signal.SIGKILL)
            first.process.wait()
            assert listening.wait(60), "".join(second.log)
            assert second.port, "".join(second.log)
            status = exchange(
                second, f'<transactions id="1"><query id="{order_id}"/></transactions>'.encode()
            )
            assert _attribute(status, "status/open", "shares") == "10"
        finally:
            if second.process.poll() is None:
                assert second.stop() == 0, "".join(second.log)
