"""``bourse report``: turn ``bourse scale`` (campaign or series) and
``bourse bench`` results into the write-up: ``report.html``, its figures
and ``report.pdf`` (matplotlib, which is slow to import, is loaded only
here).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The results to read, where the report goes, and optional notes."""
    parser.add_argument(
        "sources",
        type=Path,
        nargs="+",
        help="result directories of bourse scale (--campaign or not), or bourse bench JSON files",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("writeup"),
        help="directory for report.html, report.pdf and figures/ (%(default)s)",
    )
    parser.add_argument("--analysis", type=Path, help="text file added to the report as notes")
    parser.set_defaults(run=_report)


def _report(args: argparse.Namespace) -> int:
    notes = args.analysis.read_text() if args.analysis is not None else None
    out = args.out.parent if args.out.suffix == ".pdf" else args.out
    return report_to(args.sources, out, notes)


def report_to(sources: list[Path], out: Path, notes: str | None = None) -> int:
    """Write the report of ``sources`` into ``out`` and say what was written."""
    from bourse.bench.report import write_report  # noqa: PLC0415 - matplotlib is slow to import

    written = write_report(sources, out, notes)
    count = len(written.figures) // 2
    figures = f"{count} figure{'' if count == 1 else 's'}"
    print(f"{written.html}: {figures} (SVG and PNG in {out / 'figures'})")
    if written.pdf is None:
        print(f"PDF not written: {written.skipped}", file=sys.stderr)
    else:
        print(f"{written.pdf}: {written.pages} pages")
    return 0
