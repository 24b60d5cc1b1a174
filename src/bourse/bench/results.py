"""Raw run results, read back and grouped the way the report shows them.

The report must be rebuilt from the JSON alone, and every number in it
must trace back to the runs it came from; so nothing is summarized on
disk but the runs themselves (one JSON each, as ``bourse scale`` and
``bourse bench --json`` write them), and each figure here is a ``Stat``
that keeps the names of its runs. A run says which experiment it belongs
to (``experiment``: ``cores``, ``open-loop``, ``feed``) and which server
answered (``server``: ``exchange`` or ``null``); older results that do
not are placed by their settings.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The file of a campaign's plan and machine, beside its runs.
CAMPAIGN_FILE = "campaign.json"
#: A plain ``bourse scale`` series' summary: derived, never read back.
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True, slots=True, order=True)
class Traffic:
    """The shape of a load: connections and orders per request."""

    persistent: bool
    orders: int

    @property
    def label(self) -> str:
        """How the report names it."""
        connection = "persistent" if self.persistent else "connection per request"
        return f"{connection}, {self.orders} order{'' if self.orders == 1 else 's'}/request"

    @property
    def short(self) -> str:
        """Its name where space is short (panel titles, table cells)."""
        connection = "persistent" if self.persistent else "per request"
        return f"{connection} · {self.orders} order{'' if self.orders == 1 else 's'}"

    @property
    def slug(self) -> str:
        """Its name in file names and on the command line."""
        return f"{'persistent' if self.persistent else 'per-request'}-{self.orders}"


@dataclass(frozen=True, slots=True)
class Run:
    """One run's JSON and the name it is known by (its path in the results)."""

    name: str
    data: dict[str, Any]

    @property
    def experiment(self) -> str:
        settings = self.data["settings"]
        default = (
            "open-loop"
            if settings.get("rate")
            else "feed"
            if settings.get("subscribers")
            else "cores"
        )
        return str(self.data.get("experiment", default))

    @property
    def server(self) -> str:
        return str(self.data.get("server", "exchange"))

    @property
    def traffic(self) -> Traffic:
        settings = self.data["settings"]
        return Traffic(bool(settings["persistent"]), int(settings["orders_per_request"]))

    @property
    def cores(self) -> int:
        return int(self.data.get("cores") or self.data["machine"]["cpus_usable"])

    @property
    def series(self) -> str:
        """The server's shape: ``null server``, or its ``--workers`` rule."""
        if self.server == "null":
            return "null server"
        rule = self.data.get("workers_rule")
        if rule is not None:
            return "--workers = cores" if rule == "cores" else f"--workers {rule}"
        workers = self.data.get("workers")
        return "default --workers" if workers is None else f"--workers {workers}"

    @property
    def ok(self) -> bool:
        return bool(self.data["checks"]["ok"])

    def cpu_per_order(self) -> dict[str, float]:
        """CPU µs per order of each role during the load."""
        timed = self.data.get("cpu_timed")
        if not timed or not self.data["orders"]:
            return {}
        orders = self.data["orders"]
        return {role: 1e6 * seconds / orders for role, seconds in timed["roles"].items()}


@dataclass(frozen=True, slots=True)
class Stat:
    """A figure over repeated runs, with the runs it came from."""

    mean: float
    stdev: float
    values: tuple[float, ...]
    sources: tuple[str, ...]


def stat(runs: Iterable[Run], value: Callable[[Run], float]) -> Stat:
    """Mean and sample standard deviation of ``value`` over ``runs``."""
    chosen = list(runs)
    values = tuple(float(value(run)) for run in chosen)
    return Stat(
        mean=statistics.fmean(values),
        stdev=statistics.stdev(values) if len(values) > 1 else 0.0,
        values=values,
        sources=tuple(run.name for run in chosen),
    )


def throughput(run: Run) -> float:
    """Orders per second."""
    return float(run.data["orders_per_second"])


def latency(name: str) -> Callable[[Run], float]:
    """A latency percentile of a run, in ms."""
    return lambda run: float(run.data["latency_ms"][name])


#: experiment → traffic → series → x (cores, rate or subscribers) → runs.
Grouped = dict[Traffic, dict[str, dict[float, list[Run]]]]


@dataclass(frozen=True, slots=True)
class Results:
    """Every run of a results directory (or of several), and the
    campaign's description when there is one."""

    runs: tuple[Run, ...]
    campaign: dict[str, Any] | None

    def of(self, experiment: str) -> list[Run]:
        return [run for run in self.runs if run.experiment == experiment]

    def grouped(self, experiment: str, x: Callable[[Run], float]) -> Grouped:
        """The runs of ``experiment`` by traffic, series and ``x``, sorted."""
        grouped: Grouped = {}
        for run in sorted(self.of(experiment), key=lambda run: (run.series, x(run), run.name)):
            series = grouped.setdefault(run.traffic, {}).setdefault(run.series, {})
            series.setdefault(x(run), []).append(run)
        return dict(sorted(grouped.items(), key=lambda item: (not item[0].persistent, item[0])))

    def by_cores(self) -> Grouped:
        return self.grouped("cores", lambda run: run.cores)

    def by_rate(self) -> Grouped:
        return self.grouped("open-loop", lambda run: float(run.data["settings"]["rate"]))

    def by_subscribers(self) -> Grouped:
        return self.grouped("feed", lambda run: int(run.data["settings"]["subscribers"]))

    @property
    def first(self) -> Run:
        return self.runs[0]

    def machine(self) -> dict[str, Any]:
        """The machine, from the campaign or else from the first run."""
        if self.campaign is not None:
            machine: dict[str, Any] = self.campaign["machine"]
            return machine
        return dict(self.first.data["machine"])


def _is_run(data: object) -> bool:
    return isinstance(data, dict) and "orders_per_second" in data and "settings" in data


def load_results(sources: list[Path]) -> Results:
    """The runs of ``sources``: result directories (every run JSON below
    them) or single run JSON files; named by their path below the
    directory given (or by file name)."""
    runs: list[Run] = []
    campaign = None
    for source in sources:
        if source.is_dir():
            paths = sorted(source.rglob("*.json"))
            base = source
        else:
            paths, base = [source], source.parent
        for path in paths:
            if path.name == SUMMARY_FILE:
                continue
            data = json.loads(path.read_text())
            if path.name == CAMPAIGN_FILE:
                campaign = data
            elif _is_run(data):
                runs.append(Run(path.relative_to(base).as_posix(), data))
    if not runs:
        raise ValueError("no run results in " + ", ".join(str(source) for source in sources))
    return Results(tuple(runs), campaign)
