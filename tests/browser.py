"""A headless Chromium for the tests that must see the web view as a
browser renders it: its scripts run, its WebSocket follows the feed.

``chromium --dump-dom`` is not enough: it dumps the page as soon as it has
loaded, and ``--virtual-time-budget`` runs timers ahead without waiting for
WebSocket traffic. So the browser is started with
``--remote-debugging-pipe`` and driven over that pipe with the DevTools
protocol (JSON messages, each ended by a NUL byte; the browser reads fd 3
and writes fd 4), which needs no client library.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium")
requires_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--remote-debugging-pipe",
]
#: Runs the browser with the pipe's two ends on the fds it expects (bash: dash
#: redirects only fds 0-9).
ON_FDS_3_AND_4 = 'exec "$0" "$@" 3<&{read} 4>&{write}'
#: Where the pipe's ends are moved first, so that putting one on fd 3 or 4
#: cannot overwrite the other (pytest's capture may hold fds 3 and 4).
ABOVE_FD = 10
Json = dict[str, Any]


def _moved_up(fd: int) -> int:
    """The same file on a descriptor number of at least ``ABOVE_FD``."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, ABOVE_FD)
    os.close(fd)
    return moved


class BrowserError(RuntimeError):
    """The browser answered a command with an error, or not in time."""


class Browser:
    """A running headless Chromium and the pipe that commands it."""

    def __init__(self, profile: str) -> None:
        assert CHROMIUM is not None, "chromium not installed"
        to_browser, self._commands = os.pipe()
        self._replies, from_browser = os.pipe()
        to_browser, from_browser = _moved_up(to_browser), _moved_up(from_browser)
        script = ON_FDS_3_AND_4.format(read=to_browser, write=from_browser)
        self.process = subprocess.Popen(
            ["bash", "-c", script, CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(to_browser, from_browser),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._unread = b""
        self._last_id = 0
        #: Events the browser sent (messages without an id), oldest first.
        self.events: list[Json] = []

    def call(
        self,
        method: str,
        params: Json | None = None,
        session: str | None = None,
        timeout: float = 10.0,
    ) -> Json:
        """Send one command and return its result."""
        self._last_id += 1
        message: Json = {"id": self._last_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._commands, data) :]
        reply = self._reply(self._last_id, time.monotonic() + timeout, method)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        result: Json = reply["result"]
        return result

    def _reply(self, wanted: int, deadline: float, method: str) -> Json:
        while True:
            while b"\0" in self._unread:
                raw, self._unread = self._unread.split(b"\0", 1)
                message: Json = json.loads(raw)
                if message.get("id") == wanted:
                    return message
                if "id" not in message:
                    self.events.append(message)
            readable, _, _ = select.select(
                [self._replies], [], [], max(0.0, deadline - time.monotonic())
            )
            if not readable:
                raise BrowserError(f"{method}: no answer in time")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise BrowserError(f"{method}: the browser exited")
            self._unread += chunk

    def open(self, url: str, width: int = 1280, height: int = 800) -> Tab:
        """A new tab of ``width`` × ``height`` CSS pixels showing ``url``."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        tab = Tab(self, session["sessionId"])
        tab.call("Runtime.enable")
        tab.resize(width, height)
        tab.call("Page.navigate", {"url": url})
        return tab

    def close(self) -> None:
        """Ask the browser to quit; kill it if it does not."""
        with suppress(BrowserError, OSError):
            self.call("Browser.close", timeout=5)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._replies)


class Tab:
    """One page of the browser."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def call(self, method: str, params: Json | None = None) -> Json:
        return self.browser.call(method, params, self.session)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        reply = self.call("Runtime.evaluate", params)
        if "exceptionDetails" in reply:
            raise BrowserError(reply["exceptionDetails"].get("exception", {}).get("description"))
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        problem: str | None = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except BrowserError as error:
                problem = str(error)
            else:
                if value:
                    return value
            time.sleep(0.1)
        raise TimeoutError(f"{expression} stayed false ({problem or 'no error'})\n{self.dom()}")

    def dom(self) -> str:
        """The page's current DOM as HTML."""
        html: str = self.evaluate("document.documentElement.outerHTML")
        return html

    def errors(self) -> list[str]:
        """Uncaught exceptions and console errors of the page so far."""
        found = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                found.append(
                    str(params["exceptionDetails"].get("exception", {}).get("description"))
                )
            elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(" ".join(str(arg.get("value")) for arg in params.get("args", [])))
        return found

    def resize(self, width: int, height: int) -> None:
        """Show the page as a ``width`` × ``height`` screen (a phone when narrow)."""
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}
        self.call("Emulation.setDeviceMetricsOverride", metrics)

    def screenshot(self, path: Path) -> None:
        """Save what the page shows now as a PNG."""
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium with a throwaway profile, closed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bourse-chromium-") as profile:
        browser = Browser(profile)
        try:
            yield browser
        finally:
            browser.close()
