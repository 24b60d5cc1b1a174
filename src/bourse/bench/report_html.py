"""The report as one HTML file: typeset for A4 when printed, readable in a
browser, with its figures inline (SVG) so that the file stands alone.

Tables are where a reader checks a figure, so every row names the runs
its numbers came from (``data-runs``, shown on hover), and every number
read straight from the runs says which field it is the mean of
(``data-key``, ``data-value``): a test, or a doubtful reader, can recompute
each one from the raw JSON. Headings are numbered by the document's
order; figures and tables by their own counters, so captions and text
can refer to them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

CSS = """
@page { size: A4; margin: 17mm 16mm 18mm 16mm;
  @bottom-center { content: counter(page) " / " counter(pages);
    font: 8pt "DejaVu Sans", sans-serif; color: #666; } }
:root { --ink: #1d1d1f; --muted: #5f6368; --rule: #d0d4d9; --accent: #1f4e79; }
html { color: var(--ink); background: white; }
body { font: 10.5pt/1.42 "Liberation Serif", "Times New Roman", serif; margin: 0 auto;
  max-width: 180mm; padding: 0 4mm; hyphens: auto; }
h1, h2, h3, figcaption, table, .meta, .lead {
  font-family: "DejaVu Sans", "Liberation Sans", sans-serif; }
h1 { font-size: 20pt; margin: 0 0 2mm; color: var(--accent); letter-spacing: -0.01em; }
h2 { font-size: 13pt; margin: 8mm 0 2mm; color: var(--accent); break-after: avoid; }
h3 { font-size: 10.5pt; margin: 5mm 0 1.5mm; break-after: avoid; }
p { margin: 0 0 2.6mm; text-align: justify; }
ul { margin: 0 0 3mm; padding-left: 5mm; } li { margin-bottom: 1.2mm; }
.meta { color: var(--muted); font-size: 8.5pt; margin-bottom: 5mm; }
.lead { font-size: 9.5pt; background: #f4f7fb; border-left: 3px solid var(--accent);
  padding: 3mm 4mm; margin: 0 0 4mm; } .lead ul { margin: 0; } .lead li { margin-bottom: 1mm; }
figure { margin: 4mm 0 4mm; break-inside: avoid; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { font-size: 8.5pt; color: var(--muted); margin-top: 1.5mm; line-height: 1.35; }
figcaption b, caption b { color: var(--ink); }
table { border-collapse: collapse; width: 100%; font-size: 7.8pt; margin: 2mm 0 5mm;
  font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-size: 8.5pt; color: var(--muted);
  padding-bottom: 1.2mm; }
th { text-align: left; font-weight: 600; border-bottom: 1px solid var(--ink);
  padding: 1mm 1.6mm; vertical-align: bottom; }
td { border-bottom: 0.5px solid var(--rule); padding: 0.8mm 1.6mm; vertical-align: top; }
td.n, th.n { text-align: right; white-space: nowrap; }
tr { break-inside: avoid; } thead { display: table-header-group; }
tr.failed td { color: #b00020; }
table.data td { white-space: nowrap; }
table.values td:first-child { color: var(--muted); width: 32%; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 0 6mm; break-inside: avoid; }
code { font: 8.8pt "DejaVu Sans Mono", monospace; white-space: nowrap; }
.formula { font: 8.5pt "DejaVu Sans Mono", monospace; margin: 0 0 2mm 4mm; }
.projection { font-style: italic; }
section.appendix table { font-size: 7pt; }
@media screen { body { margin: 8mm auto; } }
"""


class Cell(NamedTuple):
    """A table cell; ``key`` names the run field its number is the mean
    of (``a/b`` for nested fields), ``per_order`` when divided by the run's
    orders and times 10⁶ (CPU seconds as µs per order)."""

    text: str
    key: str | None = None
    value: float | None = None
    per_order: bool = False
    numeric: bool = True


@dataclass(slots=True)
class Row:
    """A row and the runs its numbers came from."""

    cells: list[Cell | str]
    runs: Sequence[str] = ()
    failed: bool = False


@dataclass(slots=True)
class Document:
    """The report being written: its parts in order, with counters."""

    title: str
    parts: list[str] = field(default_factory=list)
    figures: int = 0
    tables: int = 0
    sections: int = 0

    def heading(self, text: str, anchor: str, numbered: bool = True) -> None:
        if numbered:
            self.sections += 1
            text = f"{self.sections} {text}"
        self.parts.append(f'<h2 id="{anchor}">{html.escape(text)}</h2>')

    def subheading(self, text: str) -> None:
        self.parts.append(f"<h3>{html.escape(text)}</h3>")

    def paragraph(self, markup: str) -> None:
        """A paragraph of markup (the caller escapes what it interpolates)."""
        self.parts.append(f"<p>{markup}</p>")

    def items(self, markups: Sequence[str], css: str = "") -> None:
        if markups:
            inner = "".join(f"<li>{markup}</li>" for markup in markups)
            self.parts.append(f'<ul class="{css}">{inner}</ul>' if css else f"<ul>{inner}</ul>")

    def raw(self, markup: str) -> None:
        self.parts.append(markup)

    def figure(self, anchor: str, svg: str, caption: str) -> int:
        """An inline SVG figure with its numbered caption; its number."""
        self.figures += 1
        self.parts.append(
            f'<figure id="{anchor}">{inline_svg(svg)}'
            f"<figcaption><b>Figure {self.figures}.</b> {caption}</figcaption></figure>"
        )
        return self.figures

    def table(self, anchor: str, caption: str, header: Sequence[str], rows: Sequence[Row]) -> int:
        """A numbered table of data (cells kept on one line); its number.
        With no ``header``, a table of names and values that may wrap."""
        self.tables += 1
        head = ""
        if header:
            numeric = [all(_is_numeric(row.cells[i]) for row in rows) for i in range(len(header))]
            head = (
                "<thead><tr>"
                + "".join(
                    f'<th class="n">{html.escape(name)}</th>'
                    if num
                    else f"<th>{html.escape(name)}</th>"
                    for name, num in zip(header, numeric, strict=True)
                )
                + "</tr></thead>"
            )
        body = "".join(_row(row) for row in rows)
        css = "data" if header else "values"
        self.parts.append(
            f'<table id="{anchor}" class="{css}"><caption><b>Table {self.tables}.</b> {caption}'
            f"</caption>{head}<tbody>{body}</tbody></table>"
        )
        return self.tables

    def render(self, meta: str) -> str:
        """The whole HTML file."""
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>"
            f'<h1>{html.escape(self.title)}</h1><p class="meta">{meta}</p>'
            + "\n".join(self.parts)
            + "</body></html>\n"
        )


def _is_numeric(cell: Cell | str) -> bool:
    return isinstance(cell, Cell) and cell.numeric


def _row(row: Row) -> str:
    attributes = ""
    if row.runs:
        names = " ".join(row.runs)
        attributes = f' data-runs="{html.escape(names)}" title="runs: {html.escape(names)}"'
    if row.failed:
        attributes += ' class="failed"'
    return f"<tr{attributes}>{''.join(_cell(cell) for cell in row.cells)}</tr>"


def _cell(cell: Cell | str) -> str:
    if isinstance(cell, str):
        return f"<td>{html.escape(cell)}</td>"
    attributes = ' class="n"' if cell.numeric else ""
    if cell.key is not None and cell.value is not None:
        attributes += f' data-key="{html.escape(cell.key)}" data-value="{cell.value!r}"'
        if cell.per_order:
            attributes += ' data-per-order="1"'
    return f"<td{attributes}>{html.escape(cell.text)}</td>"


_SVG_START = re.compile(r"<svg\b")


def inline_svg(svg: str) -> str:
    """An SVG file's ``<svg>`` element, without its XML prologue."""
    match = _SVG_START.search(svg)
    if match is None:
        raise ValueError("not an SVG document")
    return svg[match.start() :]


def number(value: float, digits: int = 0) -> str:
    """``1,234`` (or with ``digits`` decimals)."""
    return f"{value:,.{digits}f}"


def spread(mean: float, stdev: float, digits: int = 0) -> str:
    """``mean ± stdev``."""
    return f"{number(mean, digits)} ± {number(stdev, digits)}"


_FLAG = re.compile(r"(--[a-z][a-z-]*)")


def flags(markup: str) -> str:
    """Command-line flags in ``markup`` set as code (never broken at a hyphen)."""
    return _FLAG.sub(r"<code>\1</code>", markup)


def esc(text: object) -> str:
    """Text from the results, safe in markup."""
    return html.escape(str(text))
