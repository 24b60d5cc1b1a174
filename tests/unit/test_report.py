"""The report from hand-made runs, without any server: every figure draws
every series the runs hold (and the check notices one that is missing),
the knee and the projection follow their definitions, every table number
traces back to the raw runs, and without Chromium the HTML is still
written and the PDF step says why not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bourse.bench import figures, report
from bourse.bench.cpu import ROLES
from bourse.bench.figures import drawn_series, gid
from bourse.bench.report_text import Facts, gather
from bourse.bench.results import Traffic, load_results
from tests.report_checks import files_not_in_repository, untraced_cells

TRAFFIC = (Traffic(True, 1), Traffic(False, 1))
RULES = {"0": "--workers 0", "cores": "--workers = cores"}
#: CPU µs per order of each role, for the exchange by rule and for the null server.
COSTS = {
    "0": {"client": 50.0, "engine": 150.0, "postgres": 80.0},
    "cores": {"client": 50.0, "gateways": 90.0, "engine": 100.0, "postgres": 80.0},
    "null": {"client": 40.0, "null_server": 30.0},
}
ORDERS = 1000


def _run(
    name: str, experiment: str, server: str, rule: str, ops: float, **settings: Any
) -> tuple[str, dict[str, Any]]:
    seconds = ORDERS / ops
    costs = COSTS["null" if server == "null" else rule]
    roles = {role: costs.get(role, 0.0) * ORDERS / 1e6 for role in ROLES}
    busiest = {**roles, "postgres": roles["postgres"] * 0.75}
    p99 = float(settings.pop("p99", 5.0))
    return name, {
        "time": "2026-12-03T10:00:00Z",
        "settings": {
            "clients": 8,
            "requests_per_client": 125,
            "orders_per_request": 1,
            "persistent": True,
            "rate": None,
            "accounts": 100,
            "symbols": 10,
            "seed": 1,
            "subscribers": 0,
            **settings,
        },
        "machine": {
            "platform": "Linux-test",
            "python": "3.11.7",
            "cpu_model": "Test CPU",
            "cpu_count": 2,
            "cpus_usable": 2,
            "memory_bytes": 8 * 2**30,
        },
        "commit": "0123456789abcdef",
        "orders": ORDERS,
        "seconds": seconds,
        "orders_per_second": ops,
        "latency_ms": {"p50": p99 / 2, "p90": p99 * 0.8, "p99": p99, "p99.9": p99 * 1.3},
        "checks": {"ok": True},
        "feed": None,
        "experiment": experiment,
        "server": server,
        "workers_rule": None if server == "null" else rule,
        "workers": None,
        "cpu_timed": {"window": "load", "seconds": seconds, "roles": roles, "busiest": busiest},
        "loadavg": [0.5, 0.6],
    }


def _core_runs() -> list[tuple[str, dict[str, Any]]]:
    runs = []
    for traffic in TRAFFIC:
        shape = {"persistent": traffic.persistent}
        for cores in (1, 2):
            for rep in (1, 2):
                wobble = 1 + 0.02 * rep
                for rule in RULES:
                    ops = (1000 + 400 * cores + (300 if rule == "cores" else 0)) * wobble
                    name = f"cores-{traffic.slug}-w{rule}-k{cores}-r{rep}.json"
                    runs.append(_run(name, "cores", "exchange", rule, ops, **shape))
                    runs[-1][1]["cores"] = cores
                name = f"cores-null-{traffic.slug}-k{cores}-r{rep}.json"
                runs.append(_run(name, "cores", "null", "-", 9000 * wobble, **shape))
                runs[-1][1]["cores"] = cores
    return runs


def _other_runs() -> list[tuple[str, dict[str, Any]]]:
    runs = []
    for rule in RULES:
        for rate, p99 in ((500, 5.0), (1000, 5.5), (2000, 8.0), (4000, 80.0)):
            name = f"open-loop-w{rule}-{rate}.json"
            runs.append(
                _run(name, "open-loop", "exchange", rule, min(rate, 2500), rate=rate, p99=p99)
            )
        for subscribers in (10, 50):
            name = f"feed-w{rule}-{subscribers}.json"
            name, data = _run(name, "feed", "exchange", rule, 1500 - 10 * subscribers)
            data["settings"]["subscribers"] = subscribers
            data["feed"] = {
                "subscribers": subscribers,
                "messages": 1000 * subscribers,
                "messages_per_second": 1e6 / subscribers,
                "delay_ms": {
                    "p50": 2.0 + subscribers / 10,
                    "p99": 9.0 + subscribers,
                    "p99.9": 70.0,
                },
                "gaps": 0,
                "ok": True,
            }
            runs.append((name, data))
    for _, data in runs:
        data["cores"] = 2
    return runs


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("results")
    (directory / "runs").mkdir()
    for name, data in [*_core_runs(), *_other_runs()]:
        (directory / "runs" / name).write_text(json.dumps(data))
    return directory


@pytest.fixture(scope="module")
def facts(results: Path) -> Facts:
    return gather(load_results([results]))


def _expected(what: str, series: list[str]) -> set[str]:
    return {gid(what, name) for name in series}


def test_every_figure_draws_every_series(facts: Facts) -> None:
    exchange = list(RULES.values())
    for kind in ("throughput", "ceiling"):
        drawn = drawn_series(figures.cores_figure(facts.points, ceiling=kind == "ceiling"))
        assert drawn == {g for t in TRAFFIC for g in _expected(f"{kind}-{t.slug}", exchange)}
    curves = [(curve.series, curve.points, curve.knee) for curve in facts.curves]
    assert drawn_series(figures.latency_figure(curves)) == {
        g for p in ("p50", "p99", "p99.9") for g in _expected(f"latency-{p}", exchange)
    }
    roles = ["client", "gateways", "engine", "postgres", "null_server"]
    assert drawn_series(figures.cpu_figure(facts.shares)) == _expected("cpu", roles)
    assert drawn_series(figures.feed_figure(facts.feed)) == {
        *_expected("feed", exchange),
        *_expected("delay-p50", exchange),
        *_expected("delay-p99", exchange),
    }
    drawn = drawn_series(figures.projection_figure(facts.projections, facts.points))
    assert drawn == {
        g
        for t in TRAFFIC
        for what in (f"measured-{t.slug}", f"projected-{t.slug}")
        for g in _expected(what, exchange)
    }


def test_a_series_missing_from_a_figure_is_noticed(facts: Facts) -> None:
    """The comparison above fails when a figure leaves a series out."""
    partial = [point for point in facts.points if point.series != "--workers = cores"]
    drawn = drawn_series(figures.cores_figure(partial))
    expected = {g for t in TRAFFIC for g in _expected(f"throughput-{t.slug}", list(RULES.values()))}
    assert expected - drawn == {gid(f"throughput-{t.slug}", "--workers = cores") for t in TRAFFIC}


def test_knee_is_the_last_load_kept_up_with_a_flat_p99(facts: Facts) -> None:
    for curve in facts.curves:
        assert [point.offered for point in curve.points] == [500, 1000, 2000, 4000]
        assert curve.knee is not None
        assert curve.knee.offered == 2000  # 4,000 offered, 2,500 delivered: fell behind
        assert [point.kept_up for point in curve.points] == [True, True, True, False]


def test_projection_shows_its_arithmetic(facts: Facts) -> None:
    one_process = next(
        p
        for p in facts.projections
        if p.share.series == "--workers 0" and p.share.traffic == TRAFFIC[0]
    )
    cost = one_process.costs()
    assert cost["g"] == 0
    assert cost["e"] == pytest.approx(150)
    assert cost["w"] == pytest.approx(60)  # the busiest PostgreSQL process: 3/4 of 80
    assert one_process.at(1)[0] == pytest.approx(1e6 / 230)  # 1 × 10⁶ / (g + e + p)
    assert one_process.at(1)[1] == "cores"
    assert one_process.at(8)[0] == pytest.approx(1e6 / 150)  # 10⁶ / e
    assert one_process.at(8)[1] == "engine"


def test_exchange_is_compared_with_the_null_server_on_the_same_cores(facts: Facts) -> None:
    point = next(
        p for p in facts.points if (p.traffic, p.series, p.cores) == (TRAFFIC[0], "--workers 0", 2)
    )
    assert point.ceiling is not None
    assert point.of_ceiling is not None
    assert point.of_ceiling[0] == pytest.approx(1800 / 9000)


def test_without_chromium_the_html_is_written_and_the_pdf_step_says_why(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "_browser", lambda: None)
    written = report.write_report([results], tmp_path)
    assert written.pdf is None
    assert written.skipped is not None
    assert "no chromium" in written.skipped
    assert not (tmp_path / "report.pdf").exists()
    text = written.html.read_text()
    for anchor in ("throughput", "ceiling", "latency", "cpu", "feed", "projection"):
        assert f'id="fig-{anchor}"' in text
        assert (tmp_path / "figures" / f"{anchor}.svg").exists()
        assert (tmp_path / "figures" / f"{anchor}.png").exists()
    assert "projection, not a measurement" in text
    assert untraced_cells(written.html, results) == []
    assert files_not_in_repository(written.html) == []
