"""The graphs of a plain ``bourse scale`` series from a hand-made summary,
so their shape is checked without running any server (the report's own
figures and text: ``test_report.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bourse.bench.plots import latency_figure, save_plots, throughput_figure


def _summary() -> dict[str, Any]:
    def point(cores: int, mean: float, ok: bool = True) -> dict[str, Any]:
        latency = {
            name: {"mean": cores * 1.5, "stdev": 0.1}
            for name in ("p50", "p90", "p99", "p99.9", "max")
        }
        return {
            "cores": cores,
            "runs": 3,
            "orders_per_second": {"mean": mean, "stdev": mean / 10, "values": [mean] * 3},
            "latency_ms": latency,
            "ok": ok,
        }

    return {
        "settings": {"clients": 8, "orders_per_request": 1},
        "machine": {"cpu_model": "Test CPU"},
        "commit": "abc",
        "repetitions": 3,
        "points": [point(1, 1000.0), point(2, 1800.0), point(3, 2000.0, ok=False)],
    }


def test_throughput_has_error_bars_per_core_count() -> None:
    axes = throughput_figure(_summary()).axes[0]
    line = axes.lines[0]
    assert np.asarray(line.get_xdata()).tolist() == [1, 2, 3]
    assert np.asarray(line.get_ydata()).tolist() == [1000.0, 1800.0, 2000.0]
    assert axes.get_xlabel() == "server cores"


def test_latency_draws_the_three_percentiles() -> None:
    legend = latency_figure(_summary()).axes[0].get_legend()
    assert legend is not None
    assert [text.get_text() for text in legend.get_texts()] == ["p50", "p99", "p99.9"]


def test_saves_png_and_svg(tmp_path: Path) -> None:
    written = save_plots(_summary(), tmp_path)
    assert sorted(path.name for path in written) == [
        "latency.png",
        "latency.svg",
        "throughput.png",
        "throughput.svg",
    ]
    assert all(path.stat().st_size > 1000 for path in written)
