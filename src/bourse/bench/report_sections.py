"""The report's measured sections: each a figure, what to look at in it,
the sentences its figures support, and the table of the numbers behind it.

A section whose experiment is not in the results is left out (a plain
``bourse scale`` directory has no open-loop or feed runs), so the same
code reports one series or a whole campaign: each ``Section`` says when
it has something to show, how to draw its figure and what to caption it,
and its ``body`` writes the rest. ``Draw`` saves a figure beside the
report and gives back its SVG for the HTML.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from matplotlib.figure import Figure

from bourse.bench import figures
from bourse.bench.analysis import PROJECTED, Projection
from bourse.bench.cpu import ROLES
from bourse.bench.report_html import Cell, Document, Row, esc, number, spread
from bourse.bench.report_text import (
    Facts,
    busiest_part,
    busy_sentence,
    feed_sentence,
    knee_sentence,
    model_sentence,
    open_loop_method,
    projection_formula,
    scaling_sentences,
)
from bourse.bench.results import Run

#: Saves a figure under a file stem; its SVG text.
Draw = Callable[[str, Figure], str]


def _cores(count: int) -> str:
    return f"{count} core{'' if count == 1 else 's'}"


def _runs(facts: Facts, names: tuple[str, ...]) -> list[Run]:
    by_name = {run.name: run for run in facts.results.runs}
    return [by_name[name] for name in names]


def _mean_cell(runs: list[Run], key: str, digits: int = 0, per_order: bool = False) -> Cell:
    """The mean of a run field over ``runs``, traceable to it."""
    values = []
    for run in runs:
        value: object = run.data
        for part in key.split("/"):
            value = value[part]  # type: ignore[index]
        figure = float(value)  # type: ignore[arg-type]
        values.append(1e6 * figure / run.data["orders"] if per_order else figure)
    mean = sum(values) / len(values)
    return Cell(number(mean, digits), key, mean, per_order)


class Section(NamedTuple):
    """One measured section: when it has something to show, its heading,
    its figure and caption, and what follows them (given the figure's number)."""

    title: str
    anchor: str
    present: Callable[[Facts], bool]
    figure: Callable[[Facts], Figure]
    caption: Callable[[Facts], str]
    body: Callable[[Document, Facts, Draw, int], None]

    def write(self, doc: Document, facts: Facts, draw: Draw) -> None:
        if self.present(facts):
            doc.heading(self.title, self.anchor)
            svg = draw(self.anchor, self.figure(facts))
            self.body(doc, facts, draw, doc.figure(f"fig-{self.anchor}", svg, self.caption(facts)))


def _throughput_caption(facts: Facts) -> str:
    repetitions = max(len(point.throughput.values) for point in facts.points)
    return (
        "Orders per second against the cores the server (engine process, gateways and "
        f"PostgreSQL) was pinned to; one panel per load shape; mean of up to {repetitions} "
        "runs, bars ± one standard deviation. Look at the slope: a flat segment is a core that "
        "bought nothing; the gap between lines is what gateway processes cost or give."
    )


def _throughput_body(doc: Document, facts: Facts, draw: Draw, number_: int) -> None:
    doc.items(scaling_sentences(facts))
    if any(point.ceiling is not None for point in facts.points):
        doc.figure(
            "fig-ceiling",
            draw("ceiling", figures.cores_figure(facts.points, ceiling=True)),
            "The same runs as a share of the parse-and-answer null server's orders/s with the "
            "same client, load and cores (measured alongside): the part of this machine's "
            "ceiling the durable exchange reaches. The rest is matching, the batch statement, "
            "PostgreSQL's commit and the hop between processes.",
        )
    header = ["load", "server", "cores", "orders/s", "% of null", "p50 ms", "p99 ms", "runs"]
    caption = f"The numbers behind figure {number_} and the next (means)."
    doc.table("table-throughput", caption, [*header, "checks"], _throughput_rows(facts))


def _throughput_rows(facts: Facts) -> list[Row]:
    rows = []
    for point in facts.points:
        runs = _runs(facts, point.throughput.sources)
        share = point.of_ceiling
        cells: list[Cell | str] = [
            point.traffic.short,
            point.series,
            Cell(str(point.cores)),
            _mean_cell(runs, "orders_per_second"),
            Cell("—" if share is None else f"{100 * share[0]:.1f}"),
            _mean_cell(runs, "latency_ms/p50", 2),
            _mean_cell(runs, "latency_ms/p99", 2),
            Cell(str(len(runs))),
            "ok" if point.ok else "FAILED",
        ]
        rows.append(Row(cells, point.throughput.sources, not point.ok))
    return rows


def _latency_figure(facts: Facts) -> Figure:
    return figures.latency_figure([(c.series, c.points, c.knee) for c in facts.curves])


def _latency_body(doc: Document, facts: Facts, _draw: Draw, number_: int) -> None:
    doc.paragraph(open_loop_method())
    doc.items([knee_sentence(curve) for curve in facts.curves])
    rows = []
    for curve in facts.curves:
        for point in curve.points:
            runs = [point.run]
            cells: list[Cell | str] = [
                curve.series,
                Cell(number(point.offered)),
                _mean_cell(runs, "orders_per_second"),
                *(_mean_cell(runs, f"latency_ms/{name}", 2) for name in ("p50", "p99", "p99.9")),
                "yes" if point.kept_up else "no",
                "knee" if point == curve.knee else "",
            ]
            rows.append(Row(cells, (point.run.name,), not point.run.ok))
    header = ["server", "offered/s", "orders/s", "p50 ms", "p99 ms", "p99.9 ms", "kept up", ""]
    doc.table("table-latency", f"The runs of figure {number_}.", header, rows)


def _cpu_body(doc: Document, facts: Facts, _draw: Draw, number_: int) -> None:
    main = facts.traffics[0]
    doc.items([busy_sentence(s, facts.usable) for s in facts.shares if s.traffic == main])
    doc.paragraph(
        f"Table {doc.tables + 1} gives every load shape and server, with the cores each kept "
        "busy and the busiest single process (a process near 1.00 is bound to its one core)."
    )
    roles = [
        role
        for role in ROLES
        if any(role in share.per_order and share.per_order[role].mean for share in facts.shares)
    ]
    rows = []
    for share in facts.shares:
        runs = _runs(facts, share.sources)
        busiest = busiest_part(share)
        cells: list[Cell | str] = [share.traffic.short, share.series]
        cells += [_mean_cell(runs, f"cpu_timed/roles/{role}", per_order=True) for role in roles]
        cells += [
            Cell(f"{share.total_busy:.2f}"),
            f"{busiest.replace('_', ' ')} {share.busiest[busiest]:.2f}",
        ]
        rows.append(Row(cells, share.sources))
    header = ["load", "server", *(role.split("_")[0] for role in roles), "busy cores", "busiest"]
    caption = (
        f"CPU µs per order behind figure {number_} ({_cores(facts.top)}), and cores kept busy."
    )
    doc.table("table-cpu", caption, header, rows)


def _feed_body(doc: Document, facts: Facts, _draw: Draw, number_: int) -> None:
    baselines = {point.series: point for point in facts.feed if point.subscribers == 0}
    doc.items([feed_sentence(p, baselines.get(p.series)) for p in facts.feed if p.subscribers])
    header = ["server", "subscribers", "orders/s", "% of 0", "delay p50 ms", "p99 ms"]
    header += ["p99.9 ms", "messages/s", "gaps", "µs/message"]
    doc.table("table-feed", f"The runs of figure {number_}.", header, _feed_rows(facts))


def _feed_rows(facts: Facts) -> list[Row]:
    rows = []
    for point in facts.feed:
        runs = _runs(facts, point.throughput.sources)
        delays: list[Cell | str] = [Cell("—")] * 5
        if point.subscribers and point.delay:
            delays = [
                *(_mean_cell(runs, f"feed/delay_ms/{name}", 1) for name in ("p50", "p99", "p99.9")),
                _mean_cell(runs, "feed/messages_per_second"),
                _mean_cell(runs, "feed/gaps"),
            ]
        cost = point.server_us_per_message
        cells: list[Cell | str] = [
            point.series,
            Cell(str(point.subscribers)),
            _mean_cell(runs, "orders_per_second"),
            Cell(f"{100 * point.of_baseline:.0f}"),
            *delays,
            Cell("—" if cost is None or cost <= 0 else f"{cost:.1f}"),
        ]
        rows.append(Row(cells, point.throughput.sources))
    return rows


def _projection_body(doc: Document, facts: Facts, _draw: Draw, number_: int) -> None:
    doc.paragraph(
        "<b>This section is a projection, not a measurement.</b> From the CPU each part spent "
        "per order at the most cores measured (section “Where the CPU goes”): g for the "
        "gateways, e for the engine process, p for all of PostgreSQL and w for its busiest "
        "process (the batch writer's session). With N cores and the load generated elsewhere, "
        "throughput T(N) is at most N × 10⁶ / (g + e + p) (every core busy), and never more "
        "than 10⁶ / e (the one engine process) or 10⁶ / w (the one writer session):"
    )
    doc.raw(
        '<div class="formula projection">'
        + "<br>".join(esc(projection_formula(projection)) for projection in facts.projections)
        + "</div>"
    )
    doc.paragraph(model_sentence(facts.projections))
    header = ["load", "server", "g", "e", "p", "w", "measured", "model"]
    header += [*(f"N = {n}" for n in PROJECTED), "cap"]
    caption = (
        f"The costs (µs per order) and the projected orders/s of figure {number_}; “measured” "
        "is the mean at the most cores, “model” the formula there."
    )
    rows = [_projection_row(facts, projection) for projection in facts.projections]
    doc.table("table-projection", caption, header, rows)


def _projection_row(facts: Facts, projection: Projection) -> Row:
    share, cost = projection.share, projection.costs()
    runs = _runs(facts, share.sources)
    per_order = [
        _mean_cell(runs, f"cpu_timed/roles/{role}", per_order=True)
        for role in ("gateways", "engine", "postgres")
    ]
    projected = [Cell(number(projection.at(cores)[0])) for cores in PROJECTED]
    return Row(
        [
            share.traffic.short,
            share.series,
            *per_order,
            Cell(number(cost["w"])),
            Cell(spread(projection.measured.mean, projection.measured.stdev)),
            Cell(number(projection.at(share.cores)[0])),
            *projected,
            projection.at(PROJECTED[-1])[1],
        ],
        share.sources,
    )


def runs_appendix(doc: Document, facts: Facts) -> None:
    """Every run, its settings, what it gave and whether it checked out."""
    doc.heading("Appendix: every run", "runs", numbered=False)
    doc.paragraph(
        f"{len(facts.results.runs)} runs. Each row is one JSON file of the results directory; "
        "every figure above is a mean over rows of this table (the HTML version names them "
        "on each row)."
    )
    rows = []
    for run in sorted(facts.results.runs, key=lambda run: run.name):
        settings = run.data["settings"]
        cells: list[Cell | str] = [
            run.name.removeprefix("runs/").removesuffix(".json"),
            run.traffic.short,
            Cell(f"{settings['clients']}×{settings['requests_per_client']}"),
            Cell(f"{run.data['seconds']:.1f}"),
            _mean_cell([run], "orders_per_second"),
            _mean_cell([run], "latency_ms/p99", 2),
            "ok" if run.ok else "FAILED",
        ]
        rows.append(Row(cells, (run.name,), not run.ok))
    header = [
        "run",
        "load",
        "clients × requests",
        "load s",
        "orders/s",
        "p99 ms",
        "checks",
    ]
    doc.raw('<section class="appendix">')
    doc.table("table-runs", "Every run.", header, rows)
    doc.raw("</section>")


LATENCY_CAPTION = (
    "p50 (solid), p99 (dashed) and p99.9 (dotted) latency against the offered load, open loop, "
    "at the most cores; hollow markers are runs that fell behind the offered load. Look for the"
    " knee (the dash-dotted line): below it latency is flat, past it the queue grows and "
    "latency with it."
)
CPU_CAPTION = (
    "CPU microseconds per order spent by each part during the timed load (from its first reply "
    "to its last), at the most cores measured. The bar's length is what one order costs the "
    "machine; its largest segment is what to make cheaper first."
)
FEED_CAPTION = (
    "Left: closed-loop orders/s with that many WebSocket subscribers following every symbol "
    "(0: the runs of the throughput figure). Right: the delay from a batch's commit to its "
    "arrival at a subscriber, p50 and p99. Look at how fast throughput falls: every message is "
    "sent to every subscriber."
)
PROJECTION_CAPTION = (
    "Measured throughput (solid, ± one standard deviation) and the model from the CPU per order"
    " (dashed, hollow markers; shaded beyond the cores measured). Look at where the dashed line"
    " turns flat: from there on a core buys nothing, and only a cheaper order or more engines "
    "would."
)

#: The measured sections, in the report's order.
SECTIONS = (
    Section(
        "Throughput against server cores",
        "throughput",
        lambda facts: bool(facts.points),
        lambda facts: figures.cores_figure(facts.points),
        _throughput_caption,
        _throughput_body,
    ),
    Section(
        "Latency against offered load",
        "latency",
        lambda facts: bool(facts.curves),
        _latency_figure,
        lambda _: LATENCY_CAPTION,
        _latency_body,
    ),
    Section(
        "Where the CPU goes",
        "cpu",
        lambda facts: bool(facts.shares),
        lambda facts: figures.cpu_figure(facts.shares),
        lambda _: CPU_CAPTION,
        _cpu_body,
    ),
    Section(
        "With the market-data feed",
        "feed",
        lambda facts: any(point.subscribers for point in facts.feed),
        lambda facts: figures.feed_figure(facts.feed),
        lambda _: FEED_CAPTION,
        _feed_body,
    ),
    Section(
        "What more cores would buy (a projection)",
        "projection",
        lambda facts: bool(facts.projections),
        lambda facts: figures.projection_figure(facts.projections, facts.points),
        lambda _: PROJECTION_CAPTION,
        _projection_body,
    ),
)
