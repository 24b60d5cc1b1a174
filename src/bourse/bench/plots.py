"""Graphs of a scalability summary (``scale.summarize``): throughput and
latency against cores.

They live apart from the experiment so that ``bourse report`` draws exactly
the figures ``bourse scale`` saved, from the JSON alone, without rerunning
anything. Figures are built with the object API on the Agg backend, so no
display and no global pyplot state are needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

matplotlib.use("Agg")

SHOWN_LATENCIES = ("p50", "p99", "p99.9")
FORMATS = ("png", "svg")
SIZE = (7.0, 4.5)


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
    figure = Figure(figsize=SIZE)
    axes = figure.add_subplot()
    points = summary["points"]
    axes.errorbar(
        _cores(summary),
        [point["orders_per_second"]["mean"] for point in points],
        yerr=[point["orders_per_second"]["stdev"] for point in points],
        marker="o",
        capsize=4,
    )
    axes.set_xlabel("server cores")
    axes.set_ylabel("orders/s (mean ± stdev)")
    axes.set_xticks(_cores(summary))
    axes.set_ylim(bottom=0)
    axes.set_title("Throughput", loc="left")
    axes.set_title(_subtitle(summary), loc="right", fontsize="small")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def latency_figure(summary: dict[str, Any]) -> Figure:
    """Latency percentiles against cores, mean with ± one stdev error bars."""
    figure = Figure(figsize=SIZE)
    axes = figure.add_subplot()
    points = summary["points"]
    for name in SHOWN_LATENCIES:
        axes.errorbar(
            _cores(summary),
            [point["latency_ms"][name]["mean"] for point in points],
            yerr=[point["latency_ms"][name]["stdev"] for point in points],
            marker="o",
            capsize=4,
            label=name,
        )
    axes.set_xlabel("server cores")
    axes.set_ylabel("latency ms (mean ± stdev)")
    axes.set_xticks(_cores(summary))
    axes.set_ylim(bottom=0)
    axes.set_title("Latency", loc="left")
    axes.set_title(_subtitle(summary), loc="right", fontsize="small")
    axes.legend()
    axes.grid(alpha=0.3)
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
