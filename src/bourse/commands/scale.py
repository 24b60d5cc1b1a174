"""``bourse scale``: run the bench against fresh servers pinned to 1..N
cores (and, optionally, several ``--workers`` values) and write the
results, a summary and graphs.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

from bourse.bench.run import BenchSettings
from bourse.bench.scale import ScaleSettings, default_out, run_scale
from bourse.commands.bench import add_load_arguments, load_settings
from bourse.options import count


def _count_list(text: str) -> list[int]:
    """``0,1,2`` as a list of counts."""
    return [count(part) for part in text.split(",")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Which core counts and server shapes, the load, and where results go."""
    parser.add_argument(
        "--max-cores",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="measure with 1..N server cores (usable cores: %(default)s)",
    )
    parser.add_argument(
        "--repetitions", type=int, default=3, help="runs per core count (%(default)s)"
    )
    parser.add_argument(
        "--workers",
        type=_count_list,
        default=None,
        help="server --workers values to compare, e.g. 0,1,2: one series each, in "
        "OUT/workers-N (default: the server's own default, one series in OUT)",
    )
    add_load_arguments(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for the results and plots (bench-results/scale-<timestamp>)",
    )
    parser.set_defaults(run=_scale)


def _scale(args: argparse.Namespace) -> int:
    settings = ScaleSettings(
        max_cores=args.max_cores,
        repetitions=args.repetitions,
        bench=BenchSettings(**load_settings(args)),
    )
    out = args.out if args.out is not None else default_out()
    series = (
        [(None, out)]
        if args.workers is None
        else [(workers, out / f"workers-{workers}") for workers in args.workers]
    )
    ok = True
    for workers, directory in series:
        summary = run_scale(replace(settings, workers=workers), directory)
        ok = ok and all(point["ok"] for point in summary["points"])
        print(f"results, summary.json and plots in {directory}")
    return 0 if ok else 1
