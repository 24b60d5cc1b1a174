"""Load files (``bourse gen``, ``testing/generate_tests.py``) and their replay
(``testing/client.py``): deterministic bytes, and a replay that checks every
reply and fails loudly when replies do not come."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from bourse.bench.gen import MANIFEST_FILE, REQUESTS_FILE, SETUP_FILE, write_load_files
from bourse.bench.replay import ReplaySettings, read_frames, run_replay
from bourse.bench.workload import WorkloadShape
from bourse.cli import main
from tests.e2e.harness import running_server

TESTING = Path(__file__).resolve().parents[2] / "testing"
SMALL = WorkloadShape(accounts=20, symbols=3, requests=300, orders_per_request=2)


def _files(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in (SETUP_FILE, REQUESTS_FILE)}


def test_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    write_load_files(tmp_path / "a", SMALL, seed=7)
    write_load_files(tmp_path / "b", SMALL, seed=7)
    write_load_files(tmp_path / "c", SMALL, seed=8)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert (tmp_path / "a" / MANIFEST_FILE).read_bytes() == (
        tmp_path / "b" / MANIFEST_FILE
    ).read_bytes()
    assert _files(tmp_path / "a")[REQUESTS_FILE] != _files(tmp_path / "c")[REQUESTS_FILE]
    assert _files(tmp_path / "a")[SETUP_FILE] == _files(tmp_path / "c")[SETUP_FILE]


def test_manifest_counts_match_the_files(tmp_path: Path) -> None:
    options = "--requests 300 --accounts 20 --symbols 3 --orders-per-request 2 --seed 7"
    assert main(["gen", "--out", str(tmp_path), *options.split()]) == 0
    written = json.loads((tmp_path / MANIFEST_FILE).read_text())
    counts = written["counts"]
    requests = read_frames(tmp_path / REQUESTS_FILE)
    assert written["seed"] == 7
    assert written["settings"]["accounts"] == 20
    assert "fresh exchange" in written["order_ids"]
    assert counts["requests"] == len(requests) == 300
    assert counts["setup_requests"] == len(read_frames(tmp_path / SETUP_FILE)) == 1
    assert counts["orders"] + counts["queries"] + counts["cancels"] == 600
    assert counts["orders"] == sum(request.count(b"<order ") for request in requests)
    assert counts["queries"] > 0
    assert counts["cancels"] > 0


def test_replay_against_a_real_server(tmp_path: Path, database_url: str) -> None:
    write_load_files(tmp_path, SMALL, seed=3)
    with running_server(database_url) as server:
        outcome = asyncio.run(run_replay(ReplaySettings(tmp_path, "127.0.0.1", server.port)))
        assert server.stop() == 0, "".join(server.log)
    tally = outcome.tally
    assert tally.ok, tally
    assert outcome.requests == 300
    assert tally.checked == 301
    assert tally.opened > 0
    assert outcome.p99_ms >= outcome.p50_ms > 0


async def _read_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    writer.close()


def test_client_fails_when_the_server_closes_without_replying(tmp_path: Path) -> None:
    write_load_files(tmp_path, SMALL, seed=3)

    async def replay_against_closing_server() -> subprocess.CompletedProcess[str]:
        server = await asyncio.start_server(_read_and_close, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(TESTING / "client.py"),
                "--dir",
                str(tmp_path),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--clients",
                "2",
                stdout=subprocess.PIPE,
            )
            stdout, _ = await process.communicate()
        assert process.returncode is not None
        return subprocess.CompletedProcess([], process.returncode, stdout.decode())

    completed = asyncio.run(replay_against_closing_server())
    assert completed.returncode == 1, completed.stdout
    assert "301 missing" in completed.stdout
    assert "connection failed" in completed.stdout


def test_generate_tests_script_writes_n_requests(tmp_path: Path) -> None:
    """A copy of the script, so that it writes under ``tmp_path``."""
    script = tmp_path / "generate_tests.py"
    script.write_bytes((TESTING / "generate_tests.py").read_bytes())
    generated = tmp_path / "generated"
    completed = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "BOURSE_GEN_N": "40"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "40 transactions requests" in completed.stdout
    assert json.loads((generated / MANIFEST_FILE).read_text())["counts"]["requests"] == 40
    assert len(read_frames(generated / REQUESTS_FILE)) == 40
