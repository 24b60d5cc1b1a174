"""``bourse scale``: run the bench against fresh servers pinned to 1..N
cores (and, optionally, several ``--workers`` values) and write the
results, a summary and graphs; with ``--campaign``, every measurement the
report needs (cores, null server, open loop, feed) within ``--budget``
minutes, then the report itself.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

from bourse.bench.results import Traffic
from bourse.bench.run import BenchSettings
from bourse.commands.bench import add_load_arguments, load_settings
from bourse.options import count


def _rules(text: str) -> list[str]:
    """``0,1,cores`` as ``--workers`` rules: counts, or ``cores`` (as many as server cores)."""
    return [part if part == "cores" else str(count(part)) for part in text.split(",")]


def _traffic(text: str) -> list[Traffic]:
    """``persistent-1,per-request-1`` as load shapes."""
    shapes = []
    for part in text.split(","):
        connection, _, orders = part.rpartition("-")
        if connection not in {"persistent", "per-request"} or not orders.isdigit():
            raise argparse.ArgumentTypeError(f"{part!r}: expected persistent-K or per-request-K")
        shapes.append(Traffic(connection == "persistent", int(orders)))
    return shapes


def _floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Which core counts and server shapes, the load, where results go, and the campaign."""
    usable = len(os.sched_getaffinity(0))
    parser.add_argument(
        "--max-cores",
        type=int,
        default=usable,
        help="measure with 1..N server cores (usable cores: %(default)s)",
    )
    parser.add_argument(
        "--repetitions", type=int, default=3, help="runs per core count (%(default)s)"
    )
    parser.add_argument(
        "--workers",
        type=_rules,
        default=None,
        help="server --workers values to compare, e.g. 0,1,2 (cores: one gateway "
        "per server core): one series each, in OUT/workers-N (default: the "
        "server's own default, one series in OUT; with --campaign 0,cores)",
    )
    add_load_arguments(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for the results and plots (bench-results/scale-<timestamp>)",
    )
    _add_campaign_arguments(parser)
    parser.set_defaults(run=_scale)


def _add_campaign_arguments(parser: argparse.ArgumentParser) -> None:
    """What ``--campaign`` measures beyond the cores, and in how long."""
    campaign = parser.add_argument_group(
        "campaign",
        "--campaign runs cores, null server, open loop and feed experiments and "
        "writes the report; run sizes come from --budget (--requests-per-client, "
        "--orders-per-request and --connection-per-request are not used: see --traffic)",
    )
    campaign.add_argument("--campaign", action="store_true", help="run the whole campaign")
    campaign.add_argument(
        "--budget",
        type=float,
        default=25.0,
        help="minutes the campaign may take, report included (%(default)s)",
    )
    campaign.add_argument(
        "--traffic",
        type=_traffic,
        help="load shapes (persistent-1,persistent-10,per-request-1); the "
        "first is also the open-loop and feed load",
    )
    campaign.add_argument(
        "--open-loop",
        type=_floats,
        help="offered rates as multiples of the closed-loop throughput at the most cores, "
        "run until two in a row are past the knee (0.25,0.5,0.75,1,1.25,1.5,2,2.5,3,4)",
    )
    campaign.add_argument(
        "--subscribers",
        type=lambda text: [count(p) for p in text.split(",")],
        help="market-data subscriber counts (10,50,200)",
    )
    campaign.add_argument(
        "--report",
        type=Path,
        default=None,
        help="where the campaign writes its report (default: OUT)",
    )


def _scale(args: argparse.Namespace) -> int:
    if args.campaign:
        return _campaign(args)
    from bourse.bench.scale import ScaleSettings, default_out, run_scale  # noqa: PLC0415

    settings = ScaleSettings(
        max_cores=args.max_cores,
        repetitions=args.repetitions,
        bench=BenchSettings(**load_settings(args)),
    )
    out = args.out if args.out is not None else default_out()
    series = (
        [(None, out)]
        if args.workers is None
        else [(rule, out / f"workers-{rule}") for rule in args.workers]
    )
    ok = True
    for rule, directory in series:
        summary = run_scale(replace(settings, workers=rule), directory)
        ok = ok and all(point["ok"] for point in summary["points"])
        print(f"results, summary.json and plots in {directory}")
    return 0 if ok else 1


def _campaign(args: argparse.Namespace) -> int:
    from bourse.bench.campaign import CampaignSettings, default_cores, run_campaign  # noqa: PLC0415
    from bourse.bench.scale import default_out  # noqa: PLC0415

    given = {
        name: tuple(getattr(args, name))
        for name in ("workers", "traffic", "open_loop", "subscribers")
        if getattr(args, name) is not None
    }
    settings = CampaignSettings(
        cores=default_cores(args.max_cores),
        repetitions=args.repetitions,
        budget_seconds=60 * args.budget,
        base=BenchSettings(clients=args.clients),
        **given,
    )
    out = args.out if args.out is not None else default_out("campaign")
    status = run_campaign(settings, out)
    from bourse.commands.report import report_to  # noqa: PLC0415 - matplotlib is slow to import

    return report_to([out], args.report or out) or status
