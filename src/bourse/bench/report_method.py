"""The report's framing: the summary a reader sees first, the method that
lets them judge the figures (machine, commit, load, how each run was
isolated and checked, what this machine cannot show), and what to
configure, each built from the runs like the sections in between.
"""

from __future__ import annotations

import math

from bourse.bench.analysis import CAPS, PROJECTED, CorePoint
from bourse.bench.report_html import Document, Row, esc, flags, number
from bourse.bench.report_text import (
    NULL,
    Facts,
    busy_sentence,
    feed_sentence,
    knee_sentence,
    peak_sentence,
    projection_sentence,
    scaling_sentences,
)
from bourse.bench.results import Traffic


def _best(facts: Facts, traffic: Traffic) -> list[CorePoint]:
    """The exchange's series at the most cores for ``traffic``, best first."""
    return sorted(facts.exchange_at(facts.top, traffic), key=lambda point: -point.throughput.mean)


def summary(doc: Document, facts: Facts) -> None:
    """The findings in a few lines, before anything else."""
    lines = [peak_sentence(facts)]
    main = facts.traffics[0] if facts.traffics else None
    if main is not None:
        lines += scaling_sentences(facts, main)
        best = _best(facts, main)
        share = next(
            (s for s in facts.shares if best and (s.traffic, s.series) == (main, best[0].series)),
            None,
        )
        if share is not None:
            lines.append("At the most cores, " + busy_sentence(share, facts.usable))
        projection = next(
            (
                p
                for p in facts.projections
                if best and p.share.series == best[0].series and p.share.traffic == main
            ),
            None,
        )
        if projection is not None:
            lines.append(projection_sentence(projection) + " (a projection, section below)")
    lines += [knee_sentence(curve) for curve in facts.curves[:2]]
    most = max((point.subscribers for point in facts.feed), default=0)
    baselines = {point.series: point for point in facts.feed if point.subscribers == 0}
    lines += [
        feed_sentence(point, baselines.get(point.series))
        for point in facts.feed
        if most and point.subscribers == most
    ]
    doc.raw('<div class="lead"><b>In short.</b>')
    doc.items([line for line in lines if line])
    doc.raw("</div>")


def _machine_rows(facts: Facts) -> list[Row]:
    machine = facts.results.machine()
    runs = facts.results.runs
    loads = [value for run in runs for value in run.data.get("loadavg", [])]
    memory = machine.get("memory_bytes")
    commits = sorted({str(run.data.get("commit")) for run in runs})
    rows = [
        ["CPU", str(machine["cpu_model"])],
        ["cores", f"{machine['cpus_usable']} usable of {machine['cpu_count']}"],
        ["memory", f"{memory / 2**30:.1f} GiB" if memory else "not recorded"],
        ["system", f"{machine['platform']}, Python {machine['python']}"],
        ["commit", ", ".join(commit[:12] for commit in commits)],
        ["measured", f"{min(r.data['time'] for r in runs)} to {max(r.data['time'] for r in runs)}"],
    ]
    if loads:
        rows.append(
            ["load average (1 min) around the runs", f"{min(loads):.2f} – {max(loads):.2f}"]
        )
    return [Row([name, value]) for name, value in rows]


def _load_rows(facts: Facts) -> list[Row]:
    runs = facts.results.runs
    settings = facts.results.first.data["settings"]
    seconds = [float(run.data["seconds"]) for run in runs]
    rows = [
        ["clients", str(settings["clients"])],
        [
            "accounts, symbols, seed",
            f"{settings['accounts']}, {settings['symbols']}, {settings['seed']}",
        ],
        ["load shapes", "; ".join(traffic.label for traffic in facts.traffics)],
        ["server shapes", "; ".join(sorted({run.series for run in runs}))],
        ["server cores measured", ", ".join(str(c) for c in sorted({run.cores for run in runs}))],
        ["timed load per run", f"{min(seconds):.1f} – {max(seconds):.1f} s"],
    ]
    campaign = facts.results.campaign
    if campaign is not None:
        budget = campaign["settings"]["budget_seconds"] / 60
        took = campaign.get("elapsed_seconds")
        rows.append(
            [
                "campaign",
                f"budget {budget:.1f} min"
                + (f", took {took / 60:.1f} min" if took else " (unfinished)"),
            ]
        )
    return [Row([name, value]) for name, value in rows]


def method(doc: Document, facts: Facts) -> None:
    """Machine, load, what a run is, how it is checked, and the limits."""
    doc.heading("Method", "method")
    doc.raw('<div class="pair">')
    doc.table("table-machine", "Machine and software.", [], _machine_rows(facts))
    doc.table("table-load", "Load and runs.", [], _load_rows(facts))
    doc.raw("</div>")
    doc.paragraph(
        "Every run starts a fresh <code>bourse serve</code> on a fresh data directory with its "
        "own embedded PostgreSQL (a copy of one freshly created cluster), pins the server, its "
        "gateways and every PostgreSQL process to the first <i>k</i> cores, and runs the load "
        "generator (<code>bourse bench</code>, in process) on the other cores, or on all of "
        "them when none are left. Accounts and positions are created first, untimed; the clients "
        "then send a seeded stream of crossing limit orders, closed loop (each client waits for "
        "its reply) unless stated. After each run the server is stopped by its pid and every "
        "process it had is checked gone. The null server is <code>bourse null-server</code>: the "
        "same framing and XML reader, an <code>&lt;opened&gt;</code> for every order, no engine "
        "and no database, pinned the same way and driven by the same client. "
        "<code>--workers 0</code> runs the server as one process; <code>--workers = cores</code> "
        "gives it one gateway process per server core (<i>k</i> at <i>k</i> cores) beside the "
        "engine process."
    )
    failed = [run.name for run in facts.results.runs if not run.ok]
    doc.paragraph(
        "Every reply must be a <code>&lt;results&gt;</code> with one answer per order; after the "
        "load every acknowledged order is queried back (its open, executed and canceled shares "
        "must add up to its amount) and the database's conservation invariants are checked in "
        "SQL; feed runs also count gaps in every subscriber's sequence numbers. "
        + (
            f"<b>All {len(facts.results.runs)} runs passed these checks.</b>"
            if not failed
            else f"<b>{len(failed)} runs failed them</b> ({esc(', '.join(failed[:5]))}); "
            "their rows are marked in red."
        )
        + " CPU is read per process (user + system time) at the load's first and last reply; "
        "error bars and ± are one sample standard deviation over the repetitions."
    )
    doc.subheading("What this machine cannot show")
    doc.items([flags(esc(limit)) for limit in facts.limits])


def _workers_advice(facts: Facts, traffic: Traffic) -> str | None:
    ranked = _best(facts, traffic)
    if len(ranked) < 2:
        return None
    best, second = ranked[0], ranked[1]
    gap = best.throughput.mean - second.throughput.mean
    noise = math.hypot(best.throughput.stdev, second.throughput.stdev)
    where = f"{esc(traffic.label)} on {facts.top} cores"
    if gap <= noise:
        return (
            f"{where}: <code>{esc(best.series)}</code> and <code>{esc(second.series)}</code> are "
            f"within the noise ({number(best.throughput.mean)} and "
            f"{number(second.throughput.mean)} orders/s, ± {number(noise)}): either will do."
        )
    return (
        f"{where}: use <code>{esc(best.series)}</code>, {100 * gap / second.throughput.mean:.0f} % "
        f"more orders/s than <code>{esc(second.series)}</code> ({number(best.throughput.mean)} "
        f"against {number(second.throughput.mean)})."
    )


def _ratio_advice(facts: Facts, better: Traffic, worse: Traffic, what: str) -> str | None:
    first, second = _best(facts, better), _best(facts, worse)
    if not first or not second:
        return None
    times = first[0].throughput.mean / max(1.0, second[0].throughput.mean)
    return (
        f"{what}: ×{times:.1f} the orders/s at {facts.top} cores "
        f"({number(first[0].throughput.mean)} against {number(second[0].throughput.mean)})."
    )


def configure(doc: Document, facts: Facts) -> None:
    """What a user should set, from the figures above."""
    advice = [_workers_advice(facts, traffic) for traffic in facts.traffics]
    advice += [
        f"Plan capacity at the knee, not the peak: {knee_sentence(curve)}"
        for curve in facts.curves
        if curve.knee is not None
    ]
    advice.append(
        _ratio_advice(
            facts,
            Traffic(True, 10),
            Traffic(True, 1),
            "Clients that can send 10 orders per request get",
        )
    )
    advice.append(
        _ratio_advice(facts, Traffic(True, 1), Traffic(False, 1), "Keeping connections open gives")
    )
    flat = [
        projection
        for projection in facts.projections
        if projection.at(PROJECTED[-1])[1] != "cores" and projection.share.series != NULL
    ]
    if flat:
        widest = max(flat, key=lambda projection: projection.at(PROJECTED[-1])[0])
        value, bound = widest.at(PROJECTED[-1])
        advice.append(
            f"Past about {number(value)} orders/s ({esc(widest.share.traffic.label)}, by the "
            f"projection) {CAPS[bound]} is the limit whatever the cores: beyond it, split the "
            "symbols across engines (docs/architecture.md, “Sharding symbols across engines”)."
        )
    kept = [line for line in advice if line]
    if kept:
        doc.heading("What to configure", "configure")
        doc.items(kept)
