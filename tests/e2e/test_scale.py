"""``bourse scale`` and ``bourse report`` end to end: a tiny experiment on
real pinned servers writes its run JSONs, summary and plots, and the report
built from them is an HTML file and, where Chromium is installed, a
multi-page PDF."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from bourse.cli import main
from tests.browser import CHROMIUM

PAGE = re.compile(rb"/Type\s*/Page\b")


def test_scale_then_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "scale"
    cores = min(2, len(os.sched_getaffinity(0)))
    tiny = ("--clients", "2", "--requests-per-client", "20", "--orders-per-request", "2")
    assert (
        main(["scale", "--max-cores", str(cores), "--repetitions", "1", *tiny, "--out", str(out)])
        == 0
    )
    assert "checks ok" in capsys.readouterr().out
    for k in range(1, cores + 1):
        run = json.loads((out / f"cores-{k}-rep-1.json").read_text())
        assert run["cores"] == k
        assert run["server_cpus"] == sorted(os.sched_getaffinity(0))[:k]
        assert run["orders"] == 80
        assert run["orders_per_second"] > 0
        assert run["checks"]["ok"] is True
        assert run["checks"]["database_problems"] == []
        assert run["processes_pinned"] >= 2  # the server and at least the postmaster
    summary = json.loads((out / "summary.json").read_text())
    assert [point["cores"] for point in summary["points"]] == list(range(1, cores + 1))
    for name in ("throughput", "latency"):
        assert (out / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        assert b"<svg" in (out / f"{name}.svg").read_bytes()

    writeup = tmp_path / "writeup"
    assert main(["report", str(out), "--out", str(writeup)]) == 0
    html = (writeup / "report.html").read_text()
    assert 'id="fig-throughput"' in html
    assert 'id="fig-latency"' not in html  # a plain series has no open-loop runs
    if CHROMIUM is None:
        assert "PDF not written: no chromium" in capsys.readouterr().err
        return
    content = (writeup / "report.pdf").read_bytes()
    assert content.startswith(b"%PDF")
    assert len(PAGE.findall(content)) >= 3
