"""The report's figures, drawn from ``analysis.py``'s figures alone.

Each figure is sized for an A4 page's text width (7 inches) at the type
size of the text around it, and answers one question: how throughput
grows with cores, how far it is from the null server's ceiling, where
latency takes off under open-loop load, where the CPU goes, what the
market-data feed costs, and what more cores would give. Every series an
artist draws carries a ``gid`` (``series:<what>:<series>``), which SVG
keeps as an id: ``drawn_series`` lists them, so a test can tell when a
series that is in the data is missing from the picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bourse.bench.analysis import (
    PROJECTED,
    CorePoint,
    CpuShare,
    FeedPoint,
    OpenPoint,
    Projection,
)
from bourse.bench.cpu import ROLES
from bourse.bench.plots import colour, style_axes
from bourse.bench.results import Traffic

WIDTH = 7.0
NULL = "null server"
ROLE_COLOURS = {
    "client": "#bdbdbd",
    "gateways": "#fdae61",
    "engine": "#2b83ba",
    "postgres": "#abdda4",
    "null_server": "#d7191c",
}
ROLE_NAMES = {
    "client": "load client",
    "gateways": "gateways",
    "engine": "engine process",
    "postgres": "PostgreSQL",
    "null_server": "null server",
}
PERCENTILE_STYLES: dict[str, Literal["-", "--", ":"]] = {"p50": "-", "p99": "--", "p99.9": ":"}


def gid(what: str, series: str) -> str:
    """The id of a drawn series."""
    return f"series:{what}:{series}"


def drawn_series(figure: Figure) -> set[str]:
    """The ids of every series drawn in ``figure``."""
    found = set()
    for axes in figure.axes:
        for artist in [*axes.lines, *axes.collections, *axes.patches]:
            name = artist.get_gid()
            if name and name.startswith("series:"):
                found.add(name)
    return found


def _panels(count: int, height: float, sharey: bool = False) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(WIDTH, height))
    grid = figure.subplots(1, max(1, count), sharey=sharey, squeeze=False)
    return figure, list(grid[0])


def _by_traffic(points: Sequence[CorePoint]) -> dict[Traffic, list[CorePoint]]:
    grouped: dict[Traffic, list[CorePoint]] = {}
    for point in points:
        grouped.setdefault(point.traffic, []).append(point)
    return grouped


def _errorbars(
    axes: Axes, what: str, series: str, xs: list[float], ys: list[float], errors: list[float]
) -> None:
    container = axes.errorbar(
        xs,
        ys,
        yerr=errors,
        marker="o",
        markersize=3.5,
        capsize=3,
        linewidth=1.4,
        color=colour(series),
        label=series,
    )
    data_line, _, bar_lines = container.lines
    if data_line is not None:
        data_line.set_gid(gid(what, series))
    for bars in bar_lines:
        bars.set_gid(gid(what, series))


def _legend(figure: Figure, axes: list[Axes], columns: int = 4) -> None:
    handles, labels = {}, []
    for panel in axes:
        for handle, label in zip(*panel.get_legend_handles_labels(), strict=True):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    figure.legend(
        [handles[label] for label in labels],
        labels,
        loc="upper center",
        ncols=min(columns, len(labels)),
        frameon=False,
        bbox_to_anchor=(0.5, 1.0),
    )


def cores_figure(points: Sequence[CorePoint], ceiling: bool = False) -> Figure:
    """Throughput (or, with ``ceiling``, the share of the null server's)
    against server cores: a panel per load shape, a line per series."""
    grouped = _by_traffic(points)
    figure, axes = _panels(len(grouped), 2.7)
    for panel, (traffic, group) in zip(axes, grouped.items(), strict=True):
        for series in sorted({point.series for point in group} - {NULL}):
            line = sorted((p for p in group if p.series == series), key=lambda p: p.cores)
            if ceiling:
                shares = [p.of_ceiling or (0.0, 0.0) for p in line]
                ys, errors = [100 * s[0] for s in shares], [100 * s[1] for s in shares]
            else:
                ys = [p.throughput.mean for p in line]
                errors = [p.throughput.stdev for p in line]
            what = f"{'ceiling' if ceiling else 'throughput'}-{traffic.slug}"
            _errorbars(panel, what, series, [p.cores for p in line], ys, errors)
        cores = sorted({point.cores for point in group})
        panel.set_xticks(cores)
        panel.set_xlim(min(cores) - 0.5, max(cores) + 0.5)
        panel.set_ylim(bottom=0)
        panel.set_xlabel("server cores")
        style_axes(panel, traffic.short)
    axes[0].set_ylabel("% of the null server's orders/s" if ceiling else "orders/s (mean ± stdev)")
    _legend(figure, axes)
    figure.tight_layout(rect=(0, 0, 1, 0.9))
    return figure


def latency_figure(curves: Sequence[tuple[str, list[OpenPoint], OpenPoint | None]]) -> Figure:
    """Latency percentiles against offered load, a panel per series; hollow
    markers where the server fell behind, a line at the knee."""
    figure, axes = _panels(len(curves), 2.9, sharey=True)
    for panel, (series, points, knee) in zip(axes, curves, strict=True):
        offered = [point.offered for point in points]
        for name, style in PERCENTILE_STYLES.items():
            values = [getattr(point, name.replace(".", "")) for point in points]
            (line,) = panel.plot(
                offered, values, style, color=colour(series), linewidth=1.3, label=name
            )
            line.set_gid(gid(f"latency-{name}", series))
            behind = [i for i, point in enumerate(points) if not point.kept_up]
            panel.plot(
                [offered[i] for i in behind],
                [values[i] for i in behind],
                "o",
                markerfacecolor="white",
                color=colour(series),
                markersize=4,
            )
        if knee is not None:
            panel.axvline(knee.offered, color="black", linewidth=0.8, linestyle="-.")
            panel.annotate(
                f" knee ≈ {knee.offered:,.0f}/s",
                (knee.offered, 0.03),
                xycoords=("data", "axes fraction"),
                ha="left",
                va="bottom",
                fontsize=7,
            )
        panel.set_yscale("log")
        panel.set_xlim(left=0)
        panel.set_xlabel("offered load, orders/s")
        style_axes(panel, series)
    axes[0].set_ylabel("latency ms (log scale)")
    keys = [
        Line2D([], [], color="black", linestyle=style, linewidth=1.3)
        for style in PERCENTILE_STYLES.values()
    ]
    figure.legend(keys, list(PERCENTILE_STYLES), loc="upper center", ncols=3, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 0.9))
    return figure


def cpu_figure(shares: Sequence[CpuShare]) -> Figure:
    """Stacked horizontal bars: CPU µs per order of each part, per
    configuration at its most cores."""
    figure = Figure(figsize=(WIDTH, 0.9 + 0.27 * len(shares)))
    axes = figure.add_subplot()
    labels = [f"{share.traffic.short} · {share.series}" for share in shares]
    positions = np.arange(len(shares))[::-1]
    left = np.zeros(len(shares))
    for role in ROLES:
        widths = np.array(
            [share.per_order[role].mean if role in share.per_order else 0.0 for share in shares]
        )
        if not widths.any():
            continue
        bars = axes.barh(
            positions,
            widths,
            left=left,
            color=ROLE_COLOURS[role],
            height=0.7,
            label=ROLE_NAMES[role],
            edgecolor="white",
            linewidth=0.5,
        )
        for bar in bars.patches:
            bar.set_gid(gid("cpu", role))
        left += widths
    axes.set_yticks(positions, labels)
    axes.set_xlabel("CPU µs per order during the load (mean of the repetitions)")
    style_axes(axes)
    axes.legend(loc="lower right", ncols=5, frameon=False, bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    return figure


def feed_figure(points: Sequence[FeedPoint]) -> Figure:
    """Throughput and delivery delay against the number of subscribers."""
    figure, (left, right) = _panels(2, 2.7)
    counts = sorted({point.subscribers for point in points})
    position = {count: index for index, count in enumerate(counts)}
    for series in sorted({point.series for point in points}):
        line = sorted((p for p in points if p.series == series), key=lambda p: p.subscribers)
        xs = [float(position[p.subscribers]) for p in line]
        _errorbars(
            left,
            "feed",
            series,
            xs,
            [p.throughput.mean for p in line],
            [p.throughput.stdev for p in line],
        )
        dated = [p for p in line if p.delay]
        for name in ("p50", "p99"):
            (drawn,) = right.plot(
                [position[p.subscribers] for p in dated],
                [p.delay[name] for p in dated],
                PERCENTILE_STYLES[name],
                marker="o",
                markersize=3.5,
                color=colour(series),
                label=f"{series} {name}",
            )
            drawn.set_gid(gid(f"delay-{name}", series))
    for panel in (left, right):
        panel.set_xticks(range(len(counts)), [str(count) for count in counts])
        panel.set_xlabel("WebSocket subscribers to every symbol")
    left.set_ylim(bottom=0)
    left.set_ylabel("orders/s (closed loop)")
    right.set_ylabel("commit-to-subscriber delay, ms")
    right.set_yscale("log")
    style_axes(left, "Order throughput")
    style_axes(right, "Delivery delay")
    right.legend(frameon=False)
    figure.tight_layout()
    return figure


def projection_figure(projections: Sequence[Projection], points: Sequence[CorePoint]) -> Figure:
    """Measured throughput against cores (solid), and the model from the
    CPU per order (dashed, hollow; shaded past the cores measured), a panel
    per load shape."""
    traffics = list(dict.fromkeys(projection.share.traffic for projection in projections))
    figure, axes = _panels(len(traffics), 2.8)
    top = max(projection.share.cores for projection in projections)
    for panel, traffic in zip(axes, traffics, strict=True):
        for projection in (p for p in projections if p.share.traffic == traffic):
            _projection_lines(panel, projection, [p for p in points if p.traffic == traffic])
        panel.axvspan(top, PROJECTED[-1] * 1.2, color="#f0f0f0", zorder=0)
        panel.text(
            top * 1.1,
            0.02,
            "projection",
            transform=panel.get_xaxis_transform(),
            fontsize=7,
            color="#555555",
        )
        panel.set_xscale("log", base=2)
        ticks = sorted({1, top, *PROJECTED})
        panel.set_xticks(ticks, [str(tick) for tick in ticks])
        panel.set_ylim(bottom=0)
        panel.set_xlabel("server cores (log scale)")
        style_axes(panel, traffic.short)
    axes[0].set_ylabel("orders/s")
    _legend(figure, axes)
    figure.tight_layout(rect=(0, 0, 1, 0.9))
    return figure


def _projection_lines(panel: Axes, projection: Projection, points: Sequence[CorePoint]) -> None:
    """One configuration's measured points and its model, from 1 core on."""
    series, traffic = projection.share.series, projection.share.traffic
    measured = sorted((p for p in points if p.series == series), key=lambda p: p.cores)
    _errorbars(
        panel,
        f"measured-{traffic.slug}",
        series,
        [p.cores for p in measured],
        [p.throughput.mean for p in measured],
        [p.throughput.stdev for p in measured],
    )
    model = sorted({*range(1, projection.share.cores + 1), *PROJECTED})
    (line,) = panel.plot(
        model,
        [projection.at(cores)[0] for cores in model],
        "--o",
        color=colour(series),
        markerfacecolor="white",
        markersize=4,
        linewidth=1.1,
    )
    line.set_gid(gid(f"projected-{traffic.slug}", series))
