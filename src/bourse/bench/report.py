"""``bourse report``: the scalability write-up, from raw runs to HTML and PDF.

Numbers in JSON files are not a report: a reader needs the method (what
machine, which commit, what load, how runs were checked), figures sized
for the page with captions saying what to look at, the numbers behind
each figure, and conclusions drawn from them. This writes all of that
from one or more results directories (a ``bourse scale --campaign``, a
plain ``bourse scale`` series, or single ``bourse bench`` JSON files) as
one self-contained HTML file, which any browser opens, with each figure
also saved as SVG and PNG; then headless Chromium prints that HTML to PDF
(``--print-to-pdf``: the browser's layout engine typesets tables, page
breaks and fonts better than drawing pages by hand). Without Chromium the
HTML is still written, and the reason the PDF is not is returned.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from bourse.bench.report_html import Document, esc
from bourse.bench.report_method import configure, method, summary
from bourse.bench.report_sections import SECTIONS, Draw, runs_appendix
from bourse.bench.report_text import Facts, gather
from bourse.bench.results import load_results

TITLE = "How bourse scales"
PAGE = re.compile(rb"/Type\s*/Page\b")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PRINT_TIMEOUT = 180.0
#: Resolution of the PNG copies (the README shows one).
PNG_DPI = 150


@dataclass(frozen=True, slots=True)
class Written:
    """What ``write_report`` wrote: the HTML, the figures, and the PDF with
    its page count, or why there is no PDF."""

    html: Path
    figures: list[Path]
    pdf: Path | None
    pages: int
    skipped: str | None = None


def write_report(sources: list[Path], out: Path, notes: str | None = None) -> Written:
    """Write ``out/report.html``, ``out/figures/`` and ``out/report.pdf``
    from the runs in ``sources``; ``notes``: text added as its own section."""
    facts = gather(load_results(sources))
    (out / "figures").mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []

    def draw(stem: str, figure: Figure) -> str:
        text = io.StringIO()
        figure.savefig(text, format="svg")
        svg, png = out / "figures" / f"{stem}.svg", out / "figures" / f"{stem}.png"
        svg.write_text(text.getvalue())
        figure.savefig(png, dpi=PNG_DPI)
        saved.extend((svg, png))
        return text.getvalue()

    document = build(facts, draw, notes)
    html = out / "report.html"
    html.write_text(document.render(meta(facts)))
    pdf = out / "report.pdf"
    pdf.unlink(missing_ok=True)
    skipped = print_pdf(html, pdf)
    return Written(html, saved, None if skipped else pdf, 0 if skipped else pdf_pages(pdf), skipped)


def build(facts: Facts, draw: Draw, notes: str | None) -> Document:
    """The document: summary, method, each measured section, advice, notes, runs."""
    document = Document(TITLE)
    summary(document, facts)
    method(document, facts)
    for section in SECTIONS:
        section.write(document, facts, draw)
    configure(document, facts)
    if notes:
        document.heading("Notes", "notes")
        for paragraph in notes.strip().split("\n\n"):
            document.paragraph(esc(paragraph))
    runs_appendix(document, facts)
    return document


def meta(facts: Facts) -> str:
    """The line under the title: when, on what, at which commit."""
    machine = facts.results.machine()
    times = sorted(run.data.get("time", "") for run in facts.results.runs)
    commit = facts.results.first.data.get("commit") or "unknown"
    memory = machine.get("memory_bytes")
    return (
        f"Measured {esc(times[0][:16].replace('T', ' '))} to {esc(times[-1][11:16])} UTC on "
        f"{esc(machine['cpu_model'])}, {machine['cpus_usable']} usable cores"
        + (f", {memory / 2**30:.0f} GiB" if memory else "")
        + f"; commit <code>{esc(commit[:12])}</code>; {len(facts.results.runs)} runs, "
        "written by <code>bourse report</code>."
    )


def _browser() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def print_pdf(html: Path, pdf: Path) -> str | None:
    """Print ``html`` to ``pdf`` with headless Chromium; None if printed,
    else why not."""
    browser = _browser()
    if browser is None:
        return (
            "no chromium on PATH (nor chromium-browser, google-chrome): the HTML is written; "
            "install chromium (Debian: apt-get install chromium) and run bourse report again, "
            "or print the HTML to PDF from a browser"
        )
    command = [browser, "--headless", "--disable-gpu", "--no-pdf-header-footer"]
    if os.geteuid() == 0:
        command.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    with tempfile.TemporaryDirectory(prefix="bourse-report-") as profile:
        command += [f"--user-data-dir={profile}", f"--print-to-pdf={pdf}", html.resolve().as_uri()]
        try:
            completed = subprocess.run(
                command, capture_output=True, text=True, timeout=PRINT_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            return f"{browser} did not print within {PRINT_TIMEOUT:.0f} s"
    if completed.returncode != 0 or not pdf.exists():
        tail = completed.stderr.strip().splitlines()[-1:] or ["no message"]
        return f"{browser} failed to print (exit {completed.returncode}): {tail[0]}"
    return None


def pdf_pages(pdf: Path) -> int:
    """The pages of a PDF (its page objects)."""
    return len(PAGE.findall(pdf.read_bytes()))
