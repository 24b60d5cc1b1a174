"""``bourse bench``: closed and open loop against a real server, with its
checks passing and its JSON written; and against a server that double-fills
orders, where the protocol check must fail (a check that cannot fail proves
nothing)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from bourse.bench.run import BenchOutcome, BenchSettings, report, run_bench
from bourse.cli import main
from tests.e2e.harness import running_server


def _bench(port: int, json_path: Path, *extra: str) -> int:
    return main(
        [
            "bench",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--accounts",
            "50",
            "--quiet",
            "--json",
            str(json_path),
            *extra,
        ]
    )


def test_closed_and_open_loop_against_a_real_server(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    closed, opened = tmp_path / "closed.json", tmp_path / "open.json"
    with running_server(database_url) as server:
        common = ("--database-url", database_url)
        closed_run = ("--clients", "8", "--requests-per-client", "50", *common)
        assert _bench(server.port, closed, *closed_run) == 0, capsys.readouterr().out
        assert (
            _bench(
                server.port,
                opened,
                *("--clients", "4", "--requests-per-client", "100", "--rate", "250"),
                *("--orders-per-request", "2", "--seed", "2", *common),
            )
            == 0
        ), capsys.readouterr().out
        assert server.stop() == 0, "".join(server.log)
    for path, orders in ((closed, 400), (opened, 800)):
        result = json.loads(path.read_text())
        assert result["orders"] == orders
        assert result["checks"]["ok"] is True
        assert result["checks"]["orders_checked"] > 0
        assert result["checks"]["database_problems"] == []
        assert set(result["latency_ms"]) == {"p50", "p90", "p99", "p99.9", "max"}
        assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["max"]
        assert result["machine"]["cpu_count"] >= result["machine"]["cpus_usable"] >= 1
        assert "commit" in result
    open_result = json.loads(opened.read_text())
    assert open_result["settings"]["rate"] == 250
    assert open_result["seconds"] >= 1.5  # 400 requests scheduled over 1.6 s


class DoubleFillServer:
    """Acknowledges everything, then reports every order executed twice over."""

    def __init__(self) -> None:
        self.amounts: dict[str, Decimal] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = int(await reader.readline())
                root = etree.fromstring(await reader.readexactly(length))
                writer.write(b"<results>%s</results>\n" % "".join(self.answer(root)).encode())
        except (ValueError, asyncio.IncompleteReadError):
            writer.close()

    def answer(self, root: etree._Element) -> list[str]:
        if root.tag == "create":
            created = sum(len(child) if child.tag == "symbol" else 1 for child in root)
            return ["<created/>"] * created
        return [self.order(child) if child.tag == "order" else self.status(child) for child in root]

    def order(self, child: etree._Element) -> str:
        order_id = str(len(self.amounts) + 1)
        self.amounts[order_id] = abs(Decimal(child.get("amount", "0")))
        return f'<opened id="{order_id}"/>'

    def status(self, child: etree._Element) -> str:
        order_id = child.get("id", "")
        executed = 2 * self.amounts[order_id]
        return (
            f'<status id="{order_id}"><executed shares="{executed}" price="1" time="0"/></status>'
        )


def test_the_protocol_check_catches_a_double_fill() -> None:
    async def bench_against_fake() -> BenchOutcome:
        fake = DoubleFillServer()
        server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            settings = BenchSettings(port=port, clients=4, requests_per_client=10, accounts=5)
            return await run_bench(settings)

    outcome = asyncio.run(bench_against_fake())
    assert not outcome.ok
    assert outcome.checks.orders_checked == 40
    assert len(outcome.checks.protocol_problems) == 40
    printed = report(outcome)
    assert "40 problems" in printed
    assert "not its amount" in printed
    assert printed.endswith("FAILED")
