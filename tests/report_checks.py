"""Checks of a written report shared by the unit and integration tests:
every number a table reads from the runs is recomputed from the raw JSON
the row names, and every file the text mentions exists in the repository."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lxml import html

REPOSITORY = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"-?[\d,]+(?:\.(\d+))?")
MENTIONED_FILE = re.compile(r"\b[\w./-]+\.(?:md|py|txt|toml|yml|yaml)\b")


def _field(run: dict[str, Any], key: str) -> float:
    value: Any = run
    for part in key.split("/"):
        value = value[part]
    return float(value)


def untraced_cells(report: Path, results: Path) -> list[str]:
    """Table cells whose number is not the mean of its field over the runs
    its row names (empty when every one traces back); also data rows that
    name no runs."""
    document = html.fromstring(report.read_text())
    problems = []
    for table in document.iter("table"):
        if table.get("class") != "data":
            continue
        for row in table.findall("./tbody/tr"):
            names = (row.get("data-runs") or "").split()
            if not names:
                problems.append(f"{table.get('id')}: a row names no runs")
                continue
            runs = [json.loads((results / name).read_text()) for name in names]
            for cell in row.findall("td"):
                problem = _check(cell, runs) if cell.get("data-key") else None
                if problem:
                    problems.append(f"{table.get('id')} {names[0]}: {problem}")
    return problems


def _check(cell: Any, runs: list[dict[str, Any]]) -> str | None:
    key = str(cell.get("data-key"))
    values = [_field(run, key) for run in runs]
    if cell.get("data-per-order"):
        values = [1e6 * value / run["orders"] for value, run in zip(values, runs, strict=True)]
    mean = sum(values) / len(values)
    if abs(mean - float(cell.get("data-value"))) > 1e-9 * max(1.0, abs(mean)):
        return f"{key}: {cell.get('data-value')} is not the runs' mean {mean}"
    text = "".join(cell.itertext())
    match = NUMBER.search(text)
    if match is None:
        return f"{key}: no number in {text!r}"
    shown = float(match.group(0).replace(",", ""))
    digits = len(match.group(1) or "")
    if abs(shown - mean) > 0.5 * 10**-digits + 1e-9:
        return f"{key}: shows {shown}, the runs' mean is {mean}"
    return None


def files_not_in_repository(report: Path) -> list[str]:
    """Files the report's text mentions that the repository does not have."""
    text = " ".join(str(part) for part in html.fromstring(report.read_text()).itertext())
    return sorted(
        {name for name in MENTIONED_FILE.findall(text) if not (REPOSITORY / name).exists()}
    )
