"""``bourse report``: a PDF write-up of scalability results.

Numbers in a JSON file are not a report; a reader needs the method (what
machine, which commit, what load, how many repetitions), the graphs, the
figures in a table and what they mean. This builds all of that from the
result directories of ``bourse scale`` (or single ``bourse bench`` JSON
files) with matplotlib's ``PdfPages`` alone, so writing it needs no LaTeX
and no network. The analysis is the text of ``--analysis FILE`` when
given, else a generated summary of throughput, speed-up and p99.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from bourse.bench.plots import figures
from bourse.bench.scale import summarize

PAGE = (8.27, 11.69)  # A4 portrait, inches
WRAP = 84


def load_summary(source: Path) -> dict[str, Any]:
    """The summary of a ``bourse scale`` directory, a summary JSON or a bench JSON."""
    if source.is_dir():
        return load_summary(source / "summary.json")
    data: dict[str, Any] = json.loads(source.read_text())
    return data if "points" in data else summarize([data])


def speedups(summary: dict[str, Any]) -> list[float]:
    """Mean throughput at each core count over that at the fewest cores."""
    means = [point["orders_per_second"]["mean"] for point in summary["points"]]
    return [mean / means[0] if means[0] else 0.0 for mean in means]


def _cores(count: int) -> str:
    return f"{count} core{'' if count == 1 else 's'}"


def generated_analysis(summary: dict[str, Any]) -> str:
    """Throughput, speed-up against the fewest cores and p99, per core count."""
    points = summary["points"]
    base = points[0]["cores"]
    lines = [
        f"{_cores(point['cores'])}: {_mean_stdev(point['orders_per_second'])} orders/s, "
        f"speed-up {speedup:.2f}x vs "
        f"{_cores(base)}, p99 {point['latency_ms']['p99']['mean']:.2f} ms"
        f"{'' if point['ok'] else ' - CHECKS FAILED'}"
        for point, speedup in zip(points, speedups(summary), strict=True)
    ]
    best = max(points, key=lambda point: point["orders_per_second"]["mean"])
    lines.append(
        f"Peak throughput {best['orders_per_second']['mean']:,.0f} orders/s at "
        f"{_cores(best['cores'])}."
    )
    return "\n".join(lines)


def method_text(source: Path, summary: dict[str, Any]) -> str:
    """How the figures were measured."""
    settings, machine = summary["settings"], summary["machine"]
    load = "open loop at {} requests/s".format(settings["rate"]) if settings["rate"] else "closed"
    return "\n".join(
        [
            f"Results: {source}",
            f"Machine: {machine['cpu_model']}, {machine['cpus_usable']} usable of "
            f"{machine['cpu_count']} cores; {machine['platform']}; Python {machine['python']}",
            f"Commit: {summary['commit'] or 'unknown'}",
            f"Load: {settings['clients']} clients x {settings['requests_per_client']} requests "
            f"x {settings['orders_per_request']} orders, {load} loop, "
            f"{'persistent connections' if settings['persistent'] else 'connection per request'}"
            f", {settings['accounts']} accounts, {settings['symbols']} symbols, "
            f"seed {settings['seed']}",
            f"Repetitions: {summary['repetitions']} per core count; "
            "error bars are ± one standard deviation.",
            "Each run: a fresh server and embedded PostgreSQL pinned to the first k cores, "
            "the load generator on the others (on all when none are left); every order "
            "acknowledged is queried back"
            + (" and the SQL invariants are checked." if settings["database_checked"] else "."),
        ]
    )


def _text_page(title: str, body: str) -> Figure:
    figure = Figure(figsize=PAGE)
    figure.text(0.08, 0.94, title, fontsize=18, weight="bold", va="top")
    wrapped = "\n".join(
        textwrap.fill(paragraph, WRAP) if paragraph else "" for paragraph in body.split("\n")
    )
    figure.text(0.08, 0.88, wrapped, fontsize=9, va="top", family="monospace")
    return figure


def _mean_stdev(spread: dict[str, float]) -> str:
    return f"{spread['mean']:,.0f} ± {spread['stdev']:,.0f}"


def table_rows(summary: dict[str, Any]) -> list[list[str]]:
    """One row per core count: throughput, speed-up, latencies, checks."""
    return [
        [
            str(point["cores"]),
            _mean_stdev(point["orders_per_second"]),
            f"{speedup:.2f}",
            *(f"{point['latency_ms'][name]['mean']:.2f}" for name in ("p50", "p99", "p99.9")),
            "ok" if point["ok"] else "FAILED",
        ]
        for point, speedup in zip(summary["points"], speedups(summary), strict=True)
    ]


def _table_page(summary: dict[str, Any]) -> Figure:
    figure = Figure(figsize=PAGE)
    figure.text(0.08, 0.94, "Figures", fontsize=18, weight="bold", va="top")
    axes = figure.add_axes((0.05, 0.3, 0.9, 0.6))
    axes.axis("off")
    columns = ["cores", "orders/s", "speed-up", "p50 ms", "p99 ms", "p99.9 ms", "checks"]
    table = axes.table(cellText=table_rows(summary), colLabels=columns, loc="upper center")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.4)
    return figure


def write_report(sources: list[Path], out: Path, analysis: str | None = None) -> int:
    """Write the PDF for ``sources`` to ``out``; the number of pages."""
    out.parent.mkdir(parents=True, exist_ok=True)
    pages = 0
    with PdfPages(out) as pdf:
        for source in sources:
            summary = load_summary(source)
            text = analysis if analysis is not None else generated_analysis(summary)
            pdf_pages = [
                _text_page("bourse scalability: method", method_text(source, summary)),
                *figures(summary).values(),
                _table_page(summary),
                _text_page("Analysis", text),
            ]
            for page in pdf_pages:
                pdf.savefig(page)
            pages += len(pdf_pages)
    return pages
