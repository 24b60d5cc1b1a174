"""Graphs of a scalability summary (``scale.summarize``): throughput and
latency against cores; and the style every graph of the report shares.

They live apart from the experiment so that a graph is drawn from the
JSON alone, without rerunning anything. Figures are built with the object
API on the Agg backend, so no display and no global pyplot state are
needed; SVG keeps its text as text (``svg.fonttype = none``), so a
figure's words can be searched in the report and its PDF.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

matplotlib.use("Agg")
matplotlib.rcParams.update(
    {
        "svg.fonttype": "none",
        "font.size": 8,
        "axes.titlesize": 9,
        "axes.labelsize": 8,
        "legend.fontsize": 7.5,
        "xtick.labelsize": 7.5,
        "ytick.labelsize": 7.5,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)

SHOWN_LATENCIES = ("p50", "p99", "p99.9")
FORMATS = ("png", "svg")
SIZE = (7.0, 4.5)
#: One colour per series name, the same in every figure.
COLOURS = {
    "--workers 0": "#1f77b4",
    "--workers = cores": "#ff7f0e",
    "default --workers": "#2ca02c",
    "null server": "#7f7f7f",
}
OTHER_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def colour(series: str) -> str:
    """The colour of a series (fixed workers counts get the spare ones)."""
    if series in COLOURS:
        return COLOURS[series]
    return OTHER_COLOURS[sum(map(ord, series)) % len(OTHER_COLOURS)]


def style_axes(axes: Axes, title: str | None = None) -> None:
    """A light grid and a left-aligned title."""
    axes.grid(alpha=0.3, linewidth=0.6)
    if title:
        axes.set_title(title, loc="left")


def _cores(summary: dict[str, Any]) -> list[int]:
    return [int(point["cores"]) for point in summary["points"]]


def _subtitle(summary: dict[str, Any]) -> str:
    settings = summary["settings"]
    return (
        f"{settings['clients']} clients, {settings['orders_per_request']} orders/request, "
        f"{summary['repetitions']} repetitions; {summary['machine']['cpu_model']}"
    )


def throughput_figure(summary: dict[str, Any]) -> Figure:
    """Orders per second against cores, mean with ± one stdev error bars."""
    spreads = [point["orders_per_second"] for point in summary["points"]]
    return _spread_figure(summary, "Throughput", "orders/s (mean ± stdev)", {None: spreads})


def latency_figure(summary: dict[str, Any]) -> Figure:
    """Latency percentiles against cores, mean with ± one stdev error bars."""
    series: dict[str | None, list[dict[str, float]]] = {
        name: [point["latency_ms"][name] for point in summary["points"]] for name in SHOWN_LATENCIES
    }
    return _spread_figure(summary, "Latency", "latency ms (mean ± stdev)", series)


def _spread_figure(
    summary: dict[str, Any],
    title: str,
    ylabel: str,
    series: dict[str | None, list[dict[str, float]]],
) -> Figure:
    """One line of error bars per series (its label, or None for a figure of
    one unlabelled series → each point's ``mean`` and ``stdev``) against the
    server cores; a legend when the series are labelled."""
    figure = Figure(figsize=SIZE)
    axes = figure.add_subplot()
    cores = _cores(summary)
    for label, spreads in series.items():
        axes.errorbar(
            cores,
            [spread["mean"] for spread in spreads],
            yerr=[spread["stdev"] for spread in spreads],
            marker="o",
            capsize=4,
            label=label,
        )
    axes.set_xlabel("server cores")
    axes.set_ylabel(ylabel)
    axes.set_xticks(cores)
    axes.set_ylim(bottom=0)
    style_axes(axes, title)
    axes.set_title(_subtitle(summary), loc="right", fontsize="small")
    if None not in series:
        axes.legend()
    figure.tight_layout()
    return figure


def figures(summary: dict[str, Any]) -> dict[str, Figure]:
    """Every graph of ``summary``, by file stem."""
    return {"throughput": throughput_figure(summary), "latency": latency_figure(summary)}


def save_plots(summary: dict[str, Any], out: Path) -> list[Path]:
    """Save every graph as PNG and SVG in ``out``; the files written."""
    written = []
    for stem, figure in figures(summary).items():
        for extension in FORMATS:
            path = out / f"{stem}.{extension}"
            figure.savefig(path, dpi=150)
            written.append(path)
    return written
