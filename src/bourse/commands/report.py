"""``bourse report``: turn ``bourse scale`` and ``bourse bench`` results into
a PDF (matplotlib, which is slow to import, is loaded only here).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bourse.bench.report import write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The results to read, the PDF to write, and an optional analysis."""
    parser.add_argument(
        "sources",
        type=Path,
        nargs="+",
        help="bourse scale result directories, summary.json or bourse bench JSON files",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("writeup/report.pdf"), help="the PDF (%(default)s)"
    )
    parser.add_argument(
        "--analysis",
        type=Path,
        default=None,
        help="text file with the analysis (default: a generated summary)",
    )
    parser.set_defaults(run=_report)


def _report(args: argparse.Namespace) -> int:
    analysis = args.analysis.read_text() if args.analysis is not None else None
    pages = write_report(args.sources, args.out, analysis)
    print(f"{args.out}: {pages} pages")
    return 0
