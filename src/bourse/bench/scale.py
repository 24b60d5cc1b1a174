"""``bourse scale``: how throughput and latency change with the cores the
server may use.

One bench on one machine says little about scaling; so for k = 1..N cores
and R repetitions, a fresh server (fresh data directory, fresh embedded
PostgreSQL) is pinned to the first k usable cores — the server and every
PostgreSQL process, pinned again once the server listens so the backends
it opened are included — and the bench runs in this process on the
remaining cores (or on all of them when none remain), so the load
generator does not steal the cores being measured. Every run's result is
kept as JSON, and ``summary.json`` has the mean and standard deviation per
core count, which ``plots.py`` draws and ``report.py`` turns into a PDF.
After each run the server is stopped by its pid and every process it and
its PostgreSQL had is checked gone, so one run cannot leak into the next.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bourse.bench.run import BenchSettings, bench, result_json
from bourse.bench.server_process import Server
from bourse.server.config import ServerConfig
from bourse.store.embedded import libpq_url, read_postmaster_info

LATENCIES = ("p50", "p90", "p99", "p99.9", "max")
STOP_WAIT = 30.0


@dataclass(frozen=True, slots=True)
class ScaleSettings:
    """The experiment: core counts 1..max_cores, each repeated, each a bench."""

    max_cores: int
    repetitions: int
    bench: BenchSettings
    #: The server's ``--workers``; None leaves its default.
    workers: int | None = None


def usable_cores() -> list[int]:
    """The cores this process may run on, in order."""
    return sorted(os.sched_getaffinity(0))


def _pin_process(pid: int, cpus: set[int]) -> None:
    """Pin every thread of ``pid``: affinity is per thread on Linux."""
    process = psutil.Process(pid)
    for thread in process.threads():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(thread.id, cpus)


def server_processes(server: Server) -> list[psutil.Process]:
    """The server and its gateways, its PostgreSQL postmaster and the
    postmaster's children."""
    assert server.process is not None
    main = psutil.Process(server.process.pid)
    processes = [main, *main.children(recursive=True)]
    info = read_postmaster_info(server.data_dir / "pgdata")
    if info is not None:
        postmaster = psutil.Process(info.pid)
        processes += [postmaster, *postmaster.children(recursive=True)]
    return processes


def pin_server(server: Server, cpus: set[int]) -> list[psutil.Process]:
    """Pin the server and its PostgreSQL to ``cpus``; the processes pinned."""
    processes = server_processes(server)
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            _pin_process(process.pid, cpus)
    return processes


def stop_server(server: Server, processes: list[psutil.Process]) -> None:
    """SIGTERM the server by pid and wait; every process it had must be gone."""
    server.stop()
    everything = [*processes, *server_processes_left(server)]
    _, alive = psutil.wait_procs(everything, timeout=STOP_WAIT)
    if alive:
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
        psutil.wait_procs(alive, timeout=STOP_WAIT)
        pids = ", ".join(str(process.pid) for process in alive)
        raise RuntimeError(f"processes left after the server stopped: {pids}")


def server_processes_left(server: Server) -> list[psutil.Process]:
    """PostgreSQL processes still running in the server's data directory."""
    info = read_postmaster_info(server.data_dir / "pgdata")
    if info is None:
        return []
    try:
        postmaster = psutil.Process(info.pid)
        return [postmaster, *postmaster.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@contextlib.contextmanager
def _affinity(cpus: set[int]) -> Iterator[None]:
    """Run this thread (the load generator) on ``cpus`` for a while."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def _fresh_data_dir() -> Iterator[Path]:
    """A new data directory PostgreSQL's unprivileged user can reach."""
    parent = Path(tempfile.mkdtemp(prefix="bourse-scale-", dir="/tmp"))
    parent.chmod(0o755)
    try:
        yield parent / "data"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def run_once(settings: BenchSettings, cores: int, workers: int | None = None) -> dict[str, Any]:
    """One bench against a fresh server pinned to the first ``cores`` cores."""
    usable = usable_cores()
    server_cpus = set(usable[:cores])
    load_cpus = set(usable[cores:]) or set(usable)
    with _fresh_data_dir() as data_dir:
        server = Server(data_dir, ServerConfig().commit_timeout, workers)
        processes: list[psutil.Process] = []
        try:
            server.start()
            processes = pin_server(server, server_cpus)
            info = read_postmaster_info(data_dir / "pgdata")
            database_url = None if info is None else libpq_url(info)
            run_settings = replace(settings, port=server.port, database_url=database_url)
            before = cpu_seconds(processes)
            with _affinity(load_cpus):
                outcome = bench(run_settings)
            used = {role: cpu_seconds(processes)[role] - spent for role, spent in before.items()}
        finally:
            stop_server(server, processes)
    result = result_json(outcome)
    result.update(
        cores=cores,
        workers=workers,
        server_cpus=sorted(server_cpus),
        load_cpus=sorted(load_cpus),
        processes_pinned=len(processes),
        cpu_seconds=used,
    )
    return result


def cpu_seconds(processes: list[psutil.Process]) -> dict[str, float]:
    """CPU seconds used so far by the engine process (the server's main
    process), its gateways and PostgreSQL, from ``server_processes``."""
    main = processes[0]
    spent = {"engine": 0.0, "gateways": 0.0, "postgres": 0.0}
    children = {child.pid for child in main.children(recursive=True)}
    for process in processes:
        role = (
            "engine" if process is main else "gateways" if process.pid in children else "postgres"
        )
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            spent[role] += times.user + times.system
    return spent


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


def default_out() -> Path:
    """``bench-results/scale-<UTC timestamp>``."""
    return Path("bench-results") / time.strftime("scale-%Y%m%dT%H%M%SZ", time.gmtime())


def run_scale(settings: ScaleSettings, out: Path) -> dict[str, Any]:
    """Run the experiment, writing one JSON per run, ``summary.json`` and plots."""
    from bourse.bench.plots import save_plots  # noqa: PLC0415 - matplotlib is slow to import

    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for cores in range(1, settings.max_cores + 1):
        for repetition in range(1, settings.repetitions + 1):
            result = run_once(settings.bench, cores, settings.workers)
            result["repetition"] = repetition
            _write(out / f"cores-{cores}-rep-{repetition}.json", result)
            print(_line(result), flush=True)
            runs.append(result)
    summary = summarize(runs)
    _write(out / "summary.json", summary)
    save_plots(summary, out)
    return summary


def _line(result: dict[str, Any]) -> str:
    latency = result["latency_ms"]
    workers = "" if result["workers"] is None else f"workers {result['workers']} "
    return (
        f"{workers}cores {result['cores']} rep {result['repetition']}: "
        f"{result['orders_per_second']:,.0f} orders/s, p50 {latency['p50']:.2f} ms, "
        f"p99 {latency['p99']:.2f} ms, checks {'ok' if result['checks']['ok'] else 'FAILED'}; "
        f"CPU µs per order: {_cpu_per_order(result)}"
    )


def _cpu_per_order(result: dict[str, Any]) -> str:
    orders = result["orders"]
    return ", ".join(
        f"{role} {1e6 * seconds / orders:.0f}" for role, seconds in result["cpu_seconds"].items()
    )


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
