"""Log lines: plain text or one JSON object per line, repeats rate-limited.

A server under attack can log the same complaint thousands of times a
second ("client not reading", a connection limit reached). ``RepeatFilter``
lets each message template through ``limit`` times per ``interval`` and
then counts what it drops, reporting the count on the next line of that
template it lets through. ``--log-format json`` gives one object per line
(time, level, logger, process, message, exception) for log collectors.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass


@dataclass(slots=True)
class _Window:
    started: float
    passed: int = 1
    dropped: int = 0


class RepeatFilter(logging.Filter):
    """At most ``limit`` records of one template per ``interval`` seconds."""

    def __init__(self, limit: int = 5, interval: float = 10.0) -> None:
        super().__init__()
        self._limit = limit
        self._interval = interval
        self._windows: dict[tuple[str, int, str], _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        window = self._windows.get(key)
        if window is None or now - window.started >= self._interval:
            self._windows[key] = _Window(now)
            if window is not None and window.dropped:
                record.msg = f"{record.msg} [{window.dropped} similar lines suppressed]"
            return True
        window.passed += 1
        if window.passed <= self._limit:
            return True
        window.dropped += 1
        return False


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self._process = process

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "process": self._process,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, *, json_lines: bool = False, process: str = "bourse") -> None:
    """Send every log record to stderr, formatted and rate-limited."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter(process))
    else:
        handler.setFormatter(
            logging.Formatter(
                f"%(asctime)s %(levelname)s {process}[%(process)d] %(name)s: %(message)s"
            )
        )
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
