"""``bourse scale --campaign`` at toy size, end to end: real pinned servers
and the null server run, every run is verified and written, and the report
it writes holds every figure (drawing every series), tables whose every
number traces back to a raw JSON run, nothing that points outside the
repository and, where Chromium is installed, a PDF whose pages carry
every figure. One campaign is shared by every test of this module."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bourse.cli import main
from tests.browser import requires_chromium
from tests.report_checks import files_not_in_repository, untraced_cells

FIGURES = ("throughput", "ceiling", "latency", "cpu", "feed", "projection")
TOY = (
    *("--max-cores", "1", "--repetitions", "1", "--workers", "0", "--clients", "4"),
    *("--traffic", "persistent-1", "--open-loop", "1", "--subscribers", "3", "--budget", "0.2"),
)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toy campaign's directory, report included."""
    out = tmp_path_factory.mktemp("campaign")
    assert main(["scale", "--campaign", *TOY, "--out", str(out)]) == 0
    return out


def _runs(campaign: Path) -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in (campaign / "runs").glob("*.json")}


def test_every_kind_of_run_ran_and_was_verified(campaign: Path) -> None:
    runs = _runs(campaign)
    kinds = {(run["experiment"], run["server"]) for run in runs.values()}
    assert kinds == {
        ("cores", "exchange"),
        ("cores", "null"),
        ("open-loop", "exchange"),
        ("feed", "exchange"),
    }
    for name, run in runs.items():
        assert run["checks"]["ok"] is True, name
        assert run["cpu_timed"]["window"] == "load", name
        assert run["server_cpus"] == run["server_cpus"][:1], name
        if run["server"] == "exchange":
            assert run["checks"]["database_problems"] == [], name
            assert run["checks"]["orders_checked"] > 0, name
    feed = next(run for run in runs.values() if run["experiment"] == "feed")
    assert feed["feed"]["ok"] is True
    assert feed["feed"]["subscribers"] == 3
    described = json.loads((campaign / "campaign.json").read_text())
    assert described["machine"]["memory_bytes"] > 0
    assert described["elapsed_seconds"] > 0
    assert described["limits"]


def test_the_report_has_every_figure_with_every_series(campaign: Path) -> None:
    html = (campaign / "report.html").read_text()
    for name in FIGURES:
        assert f'id="fig-{name}"' in html, name
        svg = (campaign / "figures" / f"{name}.svg").read_text()
        assert "<svg" in svg
        assert (campaign / "figures" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    throughput = (campaign / "figures" / "throughput.svg").read_text()
    assert 'id="series:throughput-persistent-1:--workers 0"' in throughput
    latency = (campaign / "figures" / "latency.svg").read_text()
    for percentile in ("p50", "p99", "p99.9"):
        assert f'id="series:latency-{percentile}:--workers 0"' in latency
    cpu = (campaign / "figures" / "cpu.svg").read_text()
    for role in ("client", "engine", "postgres", "null_server"):
        assert f'id="series:cpu:{role}"' in cpu


def test_every_table_number_traces_to_a_raw_run(campaign: Path) -> None:
    report = campaign / "report.html"
    assert untraced_cells(report, campaign) == []
    html = report.read_text()
    for name in _runs(campaign):
        assert f"runs/{name}" in html, name  # the appendix names every run
    assert files_not_in_repository(report) == []


@requires_chromium
def test_the_pdf_carries_every_figure(campaign: Path) -> None:
    pdf = campaign / "report.pdf"
    content = pdf.read_bytes()
    assert content.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page\b", content))
    assert pages >= 4
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) not installed: figure captions not read")
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    for number in range(1, len(FIGURES) + 1):
        assert f"Figure {number}." in text
    assert "projection, not a measurement" in text
