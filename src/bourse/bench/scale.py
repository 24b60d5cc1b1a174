"""``bourse scale``: how throughput and latency change with the cores the
server may use, run by run.

One bench on one machine says little about scaling; so each run starts a
fresh server (fresh data directory, fresh embedded PostgreSQL) pinned to
the first k usable cores — the server and every PostgreSQL process,
pinned again once the server listens so the backends it opened are
included — and runs the bench in this process on the remaining cores (or
on all of them when none remain), so the load generator does not steal
the cores being measured (``pinning.py``). The same load can be run
against the parse-and-answer null server pinned the same way
(``run_null``), the ceiling every exchange figure is compared with. Each
run records the CPU each part used (``cpu.py``) and is verified as
``bourse bench`` verifies (replies, orders queried back, the SQL
invariants; for the null server, its replies). After each run the server
is stopped by its pid and every process it had is checked gone, so one
run cannot leak into the next. ``run_scale`` is the one-series sweep of
plain ``bourse scale`` (1..N cores, repeated, ``summary.json`` and two
graphs); ``campaign.py`` composes the same runs into the whole campaign.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bourse.bench.cpu import LoadWindow, RunProcesses, spent
from bourse.bench.pinning import (
    fresh_data_dir,
    load_affinity,
    pin_pids,
    pin_server,
    split_cores,
    stop_server,
    wait_gone,
)
from bourse.bench.run import BenchSettings, bench, result_json
from bourse.bench.server_process import Server
from bourse.server.config import ServerConfig
from bourse.store.embedded import libpq_url, read_postmaster_info

LATENCIES = ("p50", "p90", "p99", "p99.9", "max")
NULL_LISTENING = re.compile(r"null server listening on [^ ]+:(\d+)")


@dataclass(frozen=True, slots=True)
class ScaleSettings:
    """Plain ``bourse scale``: core counts 1..max_cores, each repeated
    ``repetitions`` times, each one bench against a fresh server whose
    ``--workers`` follows the rule ``workers`` (``workers_for``; None: the
    server's default)."""

    max_cores: int
    repetitions: int = 3
    bench: BenchSettings = field(default_factory=BenchSettings)
    workers: str | None = None


def workers_for(rule: str, cores: int) -> int:
    """The ``--workers`` a rule gives at ``cores`` server cores: the count
    it names, or for ``cores`` one gateway per server core."""
    return cores if rule == "cores" else int(rule)


def run_once(
    settings: BenchSettings, cores: int, workers: int | None = None, template: Path | None = None
) -> dict[str, Any]:
    """One bench against a fresh server pinned to the first ``cores`` cores
    (its data directory a copy of ``template`` when given)."""
    server_cpus, load_cpus = split_cores(cores)
    with fresh_data_dir(template) as data_dir:
        server = Server(data_dir, ServerConfig().commit_timeout, workers)
        pinned: list[psutil.Process] = []
        try:
            server.start()
            pinned = pin_server(server, server_cpus)
            info = read_postmaster_info(data_dir / "pgdata")
            assert server.process is not None
            processes = RunProcesses(server.process.pid, None if info is None else info.pid)
            run_settings = replace(
                settings,
                port=server.port,
                http_port=server.http_port,
                database_url=None if info is None else libpq_url(info),
            )
            result = _measure(run_settings, processes, load_cpus)
        finally:
            stop_server(server, pinned)
    result.update(server="exchange", workers=workers, processes_pinned=len(pinned))
    return _placed(result, cores, server_cpus, load_cpus)


def run_null(settings: BenchSettings, cores: int) -> dict[str, Any]:
    """The same bench against the parse-and-answer null server pinned to
    the first ``cores`` cores; its replies are checked, no orders are kept."""
    server_cpus, load_cpus = split_cores(cores)
    command = [sys.executable, "-m", "bourse.cli", "null-server", "--host", "127.0.0.1"]
    process = subprocess.Popen([*command, "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        port = _null_port(process)
        pin_pids([process.pid], server_cpus)
        run_settings = replace(settings, port=port, verify_orders=False, database_url=None)
        result = _measure(
            run_settings, RunProcesses(process.pid, main_role="null_server"), load_cpus
        )
    finally:
        main = psutil.Process(process.pid)
        process.terminate()
        process.wait(timeout=30)
        wait_gone([main])
    result.update(server="null", workers=None, processes_pinned=1)
    return _placed(result, cores, server_cpus, load_cpus)


def _null_port(process: subprocess.Popen[str]) -> int:
    """The port the null server says it listens on; its log is drained after."""
    assert process.stderr is not None
    for line in process.stderr:
        if match := NULL_LISTENING.search(line):
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return int(match.group(1))
    raise RuntimeError("bourse null-server did not start listening")


def _measure(
    settings: BenchSettings, processes: RunProcesses, load_cpus: set[int]
) -> dict[str, Any]:
    """Run the bench on ``load_cpus``; its result with the CPU each role
    used over the whole bench (``cpu_seconds``) and over the load alone
    (``cpu_timed``), and the machine's load average before and after."""
    window = LoadWindow(processes, settings.clients * settings.requests_per_client)
    load_before = os.getloadavg()[0]
    before, started = processes.read(), time.perf_counter()
    with load_affinity(load_cpus):
        outcome = bench(settings, window.on_reply)
    after, seconds = processes.read(), time.perf_counter() - started
    result = result_json(outcome)
    result["machine"]["memory_bytes"] = psutil.virtual_memory().total
    result.update(
        cpu_seconds=spent(before, after),
        cpu_timed=window.result((before, after, seconds)),
        loadavg=[load_before, os.getloadavg()[0]],
    )
    return result


def _placed(
    result: dict[str, Any], cores: int, server_cpus: set[int], load_cpus: set[int]
) -> dict[str, Any]:
    result.update(cores=cores, server_cpus=sorted(server_cpus), load_cpus=sorted(load_cpus))
    return result


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and stdev of throughput and latencies per core count."""
    by_cores: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        cores = int(run.get("cores", run["machine"]["cpus_usable"]))
        by_cores.setdefault(cores, []).append(run)
    points = [_point(cores, group) for cores, group in sorted(by_cores.items())]
    first = runs[0]
    return {
        "settings": first["settings"],
        "machine": first["machine"],
        "commit": first["commit"],
        "repetitions": max(len(group) for group in by_cores.values()),
        "points": points,
    }


def _point(cores: int, group: list[dict[str, Any]]) -> dict[str, Any]:
    throughput = [float(run["orders_per_second"]) for run in group]
    latency = {
        name: _spread([float(run["latency_ms"][name]) for run in group]) for name in LATENCIES
    }
    return {
        "cores": cores,
        "runs": len(group),
        "orders_per_second": {**_spread(throughput), "values": throughput},
        "latency_ms": latency,
        "ok": all(run["checks"]["ok"] for run in group),
    }


def default_out(kind: str = "scale") -> Path:
    """``bench-results/<kind>-<UTC timestamp>``."""
    return Path("bench-results") / time.strftime(f"{kind}-%Y%m%dT%H%M%SZ", time.gmtime())


def run_scale(settings: ScaleSettings, out: Path) -> dict[str, Any]:
    """Run the experiment, writing one JSON per run, ``summary.json`` and plots."""
    from bourse.bench.plots import save_plots  # noqa: PLC0415 - matplotlib is slow to import

    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for cores in range(1, settings.max_cores + 1):
        for repetition in range(1, settings.repetitions + 1):
            rule = settings.workers
            workers = None if rule is None else workers_for(rule, cores)
            result = run_once(settings.bench, cores, workers)
            result.update(repetition=repetition, workers_rule=rule)
            write_json(out / f"cores-{cores}-rep-{repetition}.json", result)
            print(run_line(result), flush=True)
            runs.append(result)
    summary = summarize(runs)
    write_json(out / "summary.json", summary)
    save_plots(summary, out)
    return summary


def run_line(result: dict[str, Any]) -> str:
    """A run in one line: where it ran, what it gave, whether it checked out,
    and the CPU each part spent per order during the load."""
    latency, settings = result["latency_ms"], result["settings"]
    workers = "" if result["workers"] is None else f"workers {result['workers']} "
    server = "null server " if result["server"] == "null" else ""
    experiment = result.get("experiment")
    step = f"rep {result['repetition']}"
    if experiment == "open-loop":
        step = f"offered {settings['rate']:,.0f} requests/s"
    elif experiment == "feed":
        step = f"{settings['subscribers']} subscribers"
    if experiment is not None:
        connection = "persistent" if settings["persistent"] else "per-request"
        step = f"{connection} x{settings['orders_per_request']} {step}"
    return (
        f"{server}{workers}cores {result['cores']} {step}: "
        f"{result['orders_per_second']:,.0f} orders/s, p50 {latency['p50']:.2f} ms, "
        f"p99 {latency['p99']:.2f} ms, checks {'ok' if result['checks']['ok'] else 'FAILED'}; "
        f"CPU µs per order: {_cpu_per_order(result)}"
    )


def _cpu_per_order(result: dict[str, Any]) -> str:
    orders = result["orders"]
    return ", ".join(
        f"{role} {1e6 * seconds / orders:.0f}"
        for role, seconds in result["cpu_timed"]["roles"].items()
        if seconds
    )


def write_json(path: Path, data: dict[str, Any]) -> None:
    """``data`` as indented JSON, with a final newline."""
    path.write_text(json.dumps(data, indent=2) + "\n")
