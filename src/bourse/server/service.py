"""One request's whole path in the single-process server: parse, apply, render.

The service owns the engine and the clock. It is the only place where
wall-clock time enters the exchange (whole seconds, passed into the engine).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bourse.core.engine import Engine
from bourse.protocol.events import RequestError
from bourse.protocol.reader import read_request
from bourse.protocol.render import render_error, render_results


class ExchangeService:
    """Turns one request's XML into its reply's XML, changing the exchange."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self._clock = clock

    def handle(self, body: bytes) -> bytes:
        """The reply to one request document."""
        request = read_request(body)
        if isinstance(request, RequestError):
            return render_error(request)
        return render_results(self.engine.apply(request, int(self._clock())))

    def refuse(self, error: RequestError) -> bytes:
        """The reply to a request refused before it could be read."""
        return render_error(error)
