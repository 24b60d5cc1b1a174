"""The numbers the report reasons with, computed from the runs alone.

A report that says "it saturates at 2 cores because the engine is busy"
must be able to show the arithmetic; so every conclusion is a figure
here, computed from the raw runs with the names of the runs it came from:
the ratio of each exchange figure to the null server's on the same cores
and load; the knee of the open-loop curve; the CPU each part spends per
order and how many cores that keeps busy; what a next core would buy,
projected from those costs to 8, 16 and 32 cores; and the feed's cost per
delivered message. The prose that reads them is ``report_text.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from bourse.bench.results import Results, Run, Stat, Traffic, latency, stat, throughput

#: Achieved over offered below which an open-loop run fell behind.
KEPT_UP = 0.9
#: p99 above this many times the lowest load's p99 is past the knee.
KNEE_FACTOR = 3.0
#: Core counts the projection is given for.
PROJECTED = (8, 16, 32)
#: Busy cores over usable above which the machine counts as saturated.
SATURATED = 0.85
SERVER_ROLES = ("gateways", "engine", "postgres")


def machine_limits(usable: int, top: int) -> list[str]:
    """What results measured with ``usable`` cores, the server on at most
    ``top``, cannot show."""
    limits = []
    if top >= usable:
        limits.append(
            f"At {top} server cores the load generator has no core of its own: it shares "
            "the server's, so that point understates the server."
        )
    if usable < 4:  # the engine, PostgreSQL, a gateway and the client
        limits.append(
            f"With {usable} cores, the engine, PostgreSQL, the gateways and the load generator "
            "compete for the same cores, so what --workers gains from cores of its own "
            "cannot be seen here."
        )
    limits.append(
        f"Core counts above {top} are projected from the CPU measured per order, not measured."
    )
    return limits


def ratio(numerator: Stat, denominator: Stat) -> tuple[float, float]:
    """The ratio of two means and its standard deviation (relative errors
    added in quadrature)."""
    if not denominator.mean or not numerator.mean:
        return 0.0, 0.0
    value = numerator.mean / denominator.mean
    spread = math.hypot(numerator.stdev / numerator.mean, denominator.stdev / denominator.mean)
    return value, value * spread


@dataclass(frozen=True, slots=True)
class CorePoint:
    """One configuration's figures at one core count."""

    traffic: Traffic
    series: str
    cores: int
    throughput: Stat
    p50: Stat
    p99: Stat
    ok: bool
    #: The null server's throughput with the same load and cores, if measured.
    ceiling: Stat | None

    @property
    def of_ceiling(self) -> tuple[float, float] | None:
        return None if self.ceiling is None else ratio(self.throughput, self.ceiling)


def core_points(results: Results) -> list[CorePoint]:
    """Every configuration at every core count of the cores experiment."""
    points = []
    for traffic, series_map in results.by_cores().items():
        nulls = series_map.get("null server", {})
        for series, by_x in series_map.items():
            for cores, runs in by_x.items():
                ceiling = nulls.get(cores)
                points.append(
                    CorePoint(
                        traffic,
                        series,
                        int(cores),
                        stat(runs, throughput),
                        stat(runs, latency("p50")),
                        stat(runs, latency("p99")),
                        all(run.ok for run in runs),
                        None if ceiling is None else stat(ceiling, throughput),
                    )
                )
    return points


class OpenPoint(NamedTuple):
    """One open-loop run: offered and achieved orders/s, latencies (ms)."""

    run: Run
    offered: float
    achieved: float
    p50: float
    p99: float
    p999: float

    @property
    def kept_up(self) -> bool:
        return self.achieved >= KEPT_UP * self.offered


def open_points(runs: list[Run]) -> list[OpenPoint]:
    """The open-loop runs of one configuration, by offered load."""
    points = []
    for run in runs:
        offered = float(run.data["settings"]["rate"]) * run.traffic.orders
        figures = run.data["latency_ms"]
        points.append(
            OpenPoint(
                run, offered, throughput(run), figures["p50"], figures["p99"], figures["p99.9"]
            )
        )
    return sorted(points, key=lambda point: point.offered)


def knee(points: list[OpenPoint]) -> OpenPoint | None:
    """The highest offered load the server kept up with while its p99 stayed
    within ``KNEE_FACTOR`` times the p99 at the lowest load."""
    if not points:
        return None
    limit = KNEE_FACTOR * points[0].p99
    best = None
    for point in points:
        if not point.kept_up or point.p99 > limit:
            break
        best = point
    return best


@dataclass(frozen=True, slots=True)
class CpuShare:
    """Where one configuration's CPU went during its loads at one core count."""

    traffic: Traffic
    series: str
    cores: int
    #: CPU µs per order, by role (mean over the repetitions).
    per_order: dict[str, Stat]
    #: Cores kept busy, by role, and the busiest single process of each role.
    busy: dict[str, float]
    busiest: dict[str, float]

    @property
    def sources(self) -> tuple[str, ...]:
        return next(iter(self.per_order.values())).sources

    @property
    def total_busy(self) -> float:
        return sum(self.busy.values())


def _mean(runs: list[Run], value: Callable[[Run], float]) -> float:
    return stat(runs, value).mean


def _per_order(role: str) -> Callable[[Run], float]:
    return lambda run: run.cpu_per_order()[role]


def cpu_share(traffic: Traffic, series: str, cores: int, runs: list[Run]) -> CpuShare | None:
    """The CPU figures of ``runs`` (one configuration), if they recorded any."""
    timed = [run for run in runs if run.data.get("cpu_timed")]
    if not timed:
        return None
    roles = list(timed[0].data["cpu_timed"]["roles"])

    def busy(key: str, role: str) -> Callable[[Run], float]:
        return lambda run: (
            run.data["cpu_timed"][key][role] / max(1e-9, run.data["cpu_timed"]["seconds"])
        )

    return CpuShare(
        traffic,
        series,
        cores,
        {role: stat(timed, _per_order(role)) for role in roles},
        {role: _mean(timed, busy("roles", role)) for role in roles},
        {role: _mean(timed, busy("busiest", role)) for role in roles},
    )


def cpu_shares(results: Results) -> list[CpuShare]:
    """Every configuration's CPU at the most cores measured."""
    shares = []
    for traffic, series_map in results.by_cores().items():
        for series, by_x in series_map.items():
            top = max(by_x)
            share = cpu_share(traffic, series, int(top), by_x[top])
            if share is not None:
                shares.append(share)
    return shares


@dataclass(frozen=True, slots=True)
class Projection:
    """Throughput at N cores from the CPU per order, for one configuration:
    min(N × 10⁶ / (g + e + p), 10⁶ / e, 10⁶ / w) with g the gateways', e the
    engine process's and p PostgreSQL's µs per order, w its busiest process's
    (the batch writer's session), the load generated elsewhere."""

    share: CpuShare
    measured: Stat

    def costs(self) -> dict[str, float]:
        """g, e, p and w, in µs per order."""
        per_order = {role: figure.mean for role, figure in self.share.per_order.items()}
        busy, busiest = self.share.busy["postgres"], self.share.busiest["postgres"]
        postgres = per_order.get("postgres", 0.0)
        return {
            "g": per_order.get("gateways", 0.0),
            "e": per_order.get("engine", 0.0),
            "p": postgres,
            "w": postgres * busiest / busy if busy else 0.0,
        }

    def terms(self, cores: int) -> dict[str, float]:
        """The three caps at ``cores`` cores, in orders/s."""
        cost = self.costs()
        total = cost["g"] + cost["e"] + cost["p"]
        return {
            "cores": cores * 1e6 / total if total else math.inf,
            "engine": 1e6 / cost["e"] if cost["e"] else math.inf,
            "writer": 1e6 / cost["w"] if cost["w"] else math.inf,
        }

    def at(self, cores: int) -> tuple[float, str]:
        """Projected orders/s at ``cores`` cores and the cap that binds."""
        terms = self.terms(cores)
        bound = min(terms, key=lambda name: terms[name])
        return terms[bound], bound


#: What each cap of a projection is, in words.
CAPS = {
    "cores": "every core busy",
    "engine": "one engine process",
    "writer": "PostgreSQL's one writer session",
}


def projections(results: Results) -> list[Projection]:
    """A projection for every exchange configuration with CPU figures."""
    measured = {
        (point.traffic, point.series, point.cores): point.throughput
        for point in core_points(results)
    }
    return [
        Projection(share, measured[(share.traffic, share.series, share.cores)])
        for share in cpu_shares(results)
        if share.series != "null server"
    ]


@dataclass(frozen=True, slots=True)
class FeedPoint:
    """The feed experiment at one subscriber count (0: the baseline)."""

    series: str
    subscribers: int
    throughput: Stat
    of_baseline: float
    delay: dict[str, float]
    messages_per_second: float
    #: Server CPU µs per delivered message beyond the baseline's per order.
    server_us_per_message: float | None


def _server_us_per_order(run: Run) -> float:
    cost = run.cpu_per_order()
    return sum(cost.get(role, 0.0) for role in SERVER_ROLES)


def feed_points(results: Results) -> list[FeedPoint]:
    """Each feed configuration against its 0-subscriber baseline: the
    cores experiment's runs with the same load, series and cores."""
    points: list[FeedPoint] = []
    baselines = results.by_cores()
    for traffic, series_map in results.by_subscribers().items():
        for series, by_x in series_map.items():
            cores = next(iter(by_x.values()))[0].cores
            base_runs = baselines.get(traffic, {}).get(series, {}).get(cores, [])
            base = stat(base_runs, throughput) if base_runs else None
            base_cost = _mean(base_runs, _server_us_per_order) if base_runs else None
            if base is not None:
                points.append(FeedPoint(series, 0, base, 1.0, {}, 0.0, None))
            for subscribers, runs in by_x.items():
                points.append(_feed_point(series, int(subscribers), runs, base, base_cost))
    return points


def _feed_point(
    series: str, subscribers: int, runs: list[Run], base: Stat | None, base_cost: float | None
) -> FeedPoint:
    figures = stat(runs, throughput)
    feeds = [run.data["feed"] for run in runs if run.data.get("feed")]
    delay = {name: sum(f["delay_ms"][name] for f in feeds) / len(feeds) for name in _DELAYS}
    messages = sum(f["messages_per_second"] for f in feeds) / len(feeds)
    per_message = None
    if base_cost is not None and feeds:
        orders = sum(run.data["orders"] for run in runs)
        extra = sum(_server_us_per_order(run) * run.data["orders"] for run in runs)
        delivered = sum(f["messages"] for f in feeds)
        per_message = (extra - base_cost * orders) / delivered if delivered else None
    return FeedPoint(
        series,
        subscribers,
        figures,
        figures.mean / base.mean if base and base.mean else 0.0,
        delay,
        messages,
        per_message,
    )


_DELAYS = ("p50", "p99", "p99.9")
