"""The report's words, written from the measured figures.

A reader who sizes a venue wants conclusions, not only charts: the peak
and how far it is from the machine's ceiling, the load to plan with, what
is busy when it saturates, what more cores would buy and what to
configure. Each sentence here is built from ``analysis.py``'s figures,
says which configuration it is about, and is left out when the results
do not hold what it needs; nothing is written that the runs do not show.
Numbers are formatted here; markup is escaped where results are
interpolated.
"""

from __future__ import annotations

from dataclasses import dataclass

from bourse.bench.analysis import (
    CAPS,
    KEPT_UP,
    KNEE_FACTOR,
    PROJECTED,
    SATURATED,
    CorePoint,
    CpuShare,
    FeedPoint,
    OpenPoint,
    Projection,
    core_points,
    cpu_shares,
    feed_points,
    knee,
    machine_limits,
    open_points,
    projections,
)
from bourse.bench.report_html import esc, number
from bourse.bench.results import Results, Traffic

NULL = "null server"


@dataclass(frozen=True, slots=True)
class Curve:
    """One configuration's open-loop runs and their knee."""

    traffic: Traffic
    series: str
    points: list[OpenPoint]
    knee: OpenPoint | None


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the report shows, computed once."""

    results: Results
    points: list[CorePoint]
    shares: list[CpuShare]
    projections: list[Projection]
    curves: list[Curve]
    feed: list[FeedPoint]
    usable: int
    top: int

    @property
    def limits(self) -> list[str]:
        return machine_limits(self.usable, self.top)

    def exchange_at(self, cores: int, traffic: Traffic | None = None) -> list[CorePoint]:
        return [
            point
            for point in self.points
            if point.cores == cores
            and point.series != NULL
            and (traffic is None or point.traffic == traffic)
        ]

    @property
    def traffics(self) -> list[Traffic]:
        return list(dict.fromkeys(point.traffic for point in self.points))


def gather(results: Results) -> Facts:
    """The report's figures from the runs."""
    points = core_points(results)
    curves = []
    for traffic, series_map in results.by_rate().items():
        for series, by_x in series_map.items():
            runs = open_points([run for group in by_x.values() for run in group])
            curves.append(Curve(traffic, series, runs, knee(runs)))
    usable = int(results.machine().get("cpus_usable") or max(run.cores for run in results.runs))
    return Facts(
        results=results,
        points=points,
        shares=cpu_shares(results),
        projections=projections(results),
        curves=curves,
        feed=feed_points(results),
        usable=usable,
        top=max((point.cores for point in points), default=usable),
    )


def _cores(count: int) -> str:
    return f"{count} core{'' if count == 1 else 's'}"


def _config(point: CorePoint) -> str:
    return f"{esc(point.traffic.label)}, <code>{esc(point.series)}</code>"


def peak_sentence(facts: Facts) -> str | None:
    """The highest exchange throughput and its share of the ceiling."""
    candidates = [point for point in facts.points if point.series != NULL]
    if not candidates:
        return None
    best = max(candidates, key=lambda point: point.throughput.mean)
    text = (
        f"Highest throughput measured: <b>{number(best.throughput.mean)} orders/s</b> "
        f"({_config(best)}, {_cores(best.cores)})"
    )
    share = best.of_ceiling
    if share is not None:
        text += (
            f", {100 * share[0]:.0f} % of what the parse-and-answer null server gave the "
            "same client on the same cores"
        )
    return text + "."


def scaling_sentences(facts: Facts, only: Traffic | None = None) -> list[str]:
    """Per load shape (or ``only`` one) and series: from the fewest cores
    to the most, and what the last core added."""
    sentences = []
    for traffic in [only] if only is not None else facts.traffics:
        for series in sorted({p.series for p in facts.points if p.traffic == traffic} - {NULL}):
            line = sorted(
                (p for p in facts.points if p.traffic == traffic and p.series == series),
                key=lambda p: p.cores,
            )
            if len(line) < 2:
                continue
            first, before, last = line[0], line[-2], line[-1]
            gain = last.throughput.mean - before.throughput.mean
            sentences.append(
                f"{esc(traffic.label)}, <code>{esc(series)}</code>: "
                f"{number(first.throughput.mean)} orders/s on {_cores(first.cores)}, "
                f"{number(last.throughput.mean)} on {_cores(last.cores)} "
                f"(×{last.throughput.mean / max(1.0, first.throughput.mean):.2f}); going from "
                f"{before.cores} to {last.cores} cores changed it by {gain:+,.0f} orders/s "
                f"({100 * gain / max(1.0, before.throughput.mean):+.0f} %)."
            )
    return sentences


def knee_sentence(curve: Curve) -> str:
    """The load to plan with, from one open-loop curve."""
    where = f"{esc(curve.traffic.label)}, <code>{esc(curve.series)}</code>"
    last = curve.points[-1]
    tail = (
        f" At the highest offered load, {number(last.offered)} orders/s, it delivered "
        f"{number(last.achieved)} with p99 {number(last.p99, 1)} ms."
    )
    if curve.knee is last:
        return (
            f"{where}: kept up at every offered load, up to {number(last.offered)} orders/s with "
            f"p99 {number(last.p99, 1)} ms: the knee is at or beyond that."
        )
    if curve.knee is None:
        return (
            f"{where}: even the lowest offered load ({number(curve.points[0].offered)} orders/s) "
            "was past the knee." + tail
        )
    return (
        f"{where}: plan with about <b>{number(curve.knee.offered)} orders/s</b>, where p99 was "
        f"{number(curve.knee.p99, 1)} ms and p99.9 {number(curve.knee.p999, 1)} ms." + tail
    )


def busy_sentence(share: CpuShare, usable: int) -> str:
    """What was busy at the most cores, and whether that is saturation."""
    parts = ", ".join(
        f"{role.replace('_', ' ')} {share.busy[role]:.2f}"
        for role in share.busy
        if share.busy[role] >= 0.01  # a hundredth of a core is below the clock's tick
    )
    single = busiest_part(share)
    if share.total_busy >= SATURATED * usable:
        verdict = (
            "the machine was saturated: more offered load cannot raise throughput, only a "
            "cheaper order can"
        )
    else:
        verdict = (
            f"on average {usable - share.total_busy:.1f} of the {usable} cores stayed idle, so "
            "the limit was the parts waiting on each other (a closed-loop client waits for each "
            "reply"
            + ("" if share.series == NULL else "; a batch's replies leave only after its commit")
            + "), not CPU"
        )
    return (
        f"{esc(share.traffic.label)}, <code>{esc(share.series)}</code> on "
        f"{_cores(share.cores)}: {share.total_busy:.2f} of {usable} cores busy ({parts}); the "
        f"busiest process, the {single.replace('_', ' ')}, used {share.busiest[single]:.2f} of a "
        f"core; {verdict}."
    )


def busiest_part(share: CpuShare) -> str:
    """The server-side role whose busiest single process used the most CPU."""
    return max(
        (role for role in share.busiest if role != "client"), key=lambda role: share.busiest[role]
    )


def projection_formula(projection: Projection) -> str:
    """The model's arithmetic for one configuration, in plain text."""
    cost = projection.costs()
    total = cost["g"] + cost["e"] + cost["p"]
    terms = projection.terms(1)
    share = projection.share
    value, bound = projection.at(PROJECTED[-1])
    return (
        f"{share.traffic.short}, {share.series}: T(N) = min(N × 10⁶ / {number(total)}, "
        f"10⁶ / {number(cost['e'])}, 10⁶ / {number(cost['w'])}) = min(N × "
        f"{number(terms['cores'])}, {number(terms['engine'])}, "
        f"{number(terms['writer'])}) → {number(value)} orders/s at N = "
        f"{PROJECTED[-1]} ({CAPS[bound]})"
    )


def model_sentence(projected: list[Projection]) -> str:
    """How the model compares with the measurements where both exist."""
    shares = [
        projection.measured.mean / model
        for projection in projected
        if (model := projection.at(projection.share.cores)[0])
    ]
    top = projected[0].share.cores
    return (
        f"At {_cores(top)} the measurements reached {100 * min(shares):.0f}–"
        f"{100 * max(shares):.0f} % of the model (the table's “measured” against “model”). "
        "The model counts CPU only: where the measured points sit below the dashed line, the "
        "parts spent time waiting on each other (a client for its reply, a batch for its "
        "commit) or, at the most cores, the load generator took its share of them. Read the "
        "projection as an upper bound."
    )


def projection_sentence(projection: Projection) -> str:
    """What more cores would buy one configuration, by the model."""
    share = projection.share
    values = [projection.at(cores) for cores in PROJECTED]
    flat = next(
        (cores for cores in range(share.cores, 257) if projection.at(cores)[1] != "cores"),
        None,
    )
    text = (
        f"{esc(share.traffic.label)}, <code>{esc(share.series)}</code>: projected "
        + ", ".join(
            f"{number(value)} at {cores}"
            for cores, (value, _) in zip(PROJECTED, values, strict=True)
        )
        + " cores"
    )
    if flat is None:
        return text + ", still growing with every core."
    return (
        text + f". From {_cores(flat)} on, each further core buys nothing: "
        f"{CAPS[projection.at(flat)[1]]} caps it at {number(projection.at(flat)[0])} orders/s."
    )


def feed_sentence(point: FeedPoint, baseline: FeedPoint | None) -> str:
    """Throughput and delay at one subscriber count."""
    text = (
        f"<code>{esc(point.series)}</code> with {point.subscribers} subscribers: "
        f"{number(point.throughput.mean)} orders/s"
    )
    if baseline is not None:
        text += (
            f", {100 * point.of_baseline:.0f} % of the {number(baseline.throughput.mean)} without"
        )
    if point.delay:
        text += (
            f"; commit-to-subscriber delay p50 {number(point.delay['p50'], 1)} ms, p99 "
            f"{number(point.delay['p99'], 1)} ms"
        )
    cost = point.server_us_per_message
    if cost is not None and cost > 0:
        text += f"; about {cost:.1f} µs of server CPU per delivered message"
    return text + "."


def open_loop_method() -> str:
    """How the knee is defined."""
    return (
        "Open loop: request <i>i</i> is due at <i>t</i>₀ + <i>i</i>/rate whatever the server "
        "does, and its latency is measured from that due time, so queueing cannot hide. A run "
        f"<i>kept up</i> if it delivered at least {100 * KEPT_UP:.0f} % of the offered load; "
        "the <i>knee</i> is the highest offered load that kept up while p99 stayed within "
        f"{KNEE_FACTOR:g}× the p99 at the lowest load."
    )
