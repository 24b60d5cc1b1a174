"""What the exchange is doing, for Prometheus, and whether it is ready.

Counting must cost the request path next to nothing, so the hot path only
bumps plain integers (``FrontendCounters`` where connections are served,
``EngineCounters`` where requests are applied) and a collector turns them
into metrics when Prometheus scrapes. Gateway processes send their
frontend counters to the engine process every second (a ``STATS`` item on
their link), and the engine process serves ``/metrics`` and ``/healthz``
for the whole server on ``--metrics-port``.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

#: Requests per committed batch, and seconds per commit.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
COMMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0)
#: Seconds the tables trail a commit.
LAG_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


@dataclass(slots=True)
class FrontendCounters:
    """Counted where clients are served (one process, or each gateway)."""

    accepted: int = 0
    open: int = 0
    #: Requests answered with an error before reaching the engine
    #: (framing, XML, access control, the connection's rate limit).
    refused: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    #: Requests sent to the engine and not yet answered (gateways only).
    waiting: int = 0

    def refuse(self, code_name: str) -> None:
        """Count one request answered with the error ``code_name``."""
        self.refused += 1
        self.errors[code_name] += 1

    def snapshot(self) -> dict[str, Any]:
        """A plain copy to send to the engine process."""
        return {
            "accepted": self.accepted,
            "open": self.open,
            "refused": self.refused,
            "errors": dict(self.errors),
            "waiting": self.waiting,
        }


@dataclass(slots=True)
class EngineCounters:
    """Counted where requests are applied and committed."""

    applied: int = 0
    refused: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    orders: int = 0
    fills: int = 0


class Metrics:
    """Every counter of the server, and the collector that reports them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.engine = EngineCounters()
        self.local = FrontendCounters()
        self.gateways: dict[int, dict[str, Any]] = {}
        self.retired = FrontendCounters()
        self.filling: Callable[[], int] = lambda: 0
        #: Rows of committed batches the tables do not hold yet.
        self.projection_backlog: Callable[[], int] = lambda: 0
        #: Orders the engine holds in memory (open, and closed not yet projected).
        self.orders_in_memory: Callable[[], int] = lambda: 0
        self.batch_requests = Histogram(
            "bourse_batch_requests",
            "Requests per committed batch",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "bourse_commit_seconds",
            "Seconds from sending a batch to its COMMIT returning",
            buckets=COMMIT_BUCKETS,
            registry=self.registry,
        )
        self.projection_lag_seconds = Histogram(
            "bourse_projection_lag_seconds",
            "Seconds from a batch's commit to the tables holding it (the oldest "
            "batch of each projected window)",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Collector(self))

    def gateway_report(self, index: int, snapshot: dict[str, Any]) -> None:
        """The latest counters of gateway ``index``."""
        self.gateways[index] = snapshot

    def gateway_gone(self, index: int) -> None:
        """Keep a dead gateway's totals (its successor counts from zero)."""
        last = self.gateways.pop(index, None)
        if last is not None:
            self.retired.accepted += last["accepted"]
            self.retired.refused += last["refused"]
            self.retired.errors.update(last["errors"])

    def frontends(self) -> FrontendCounters:
        """The frontend counters of the whole server, summed."""
        total = FrontendCounters(
            accepted=self.local.accepted + self.retired.accepted,
            open=self.local.open,
            refused=self.local.refused + self.retired.refused,
            waiting=self.local.waiting,
        )
        total.errors.update(self.local.errors)
        total.errors.update(self.retired.errors)
        for snapshot in self.gateways.values():
            total.accepted += snapshot["accepted"]
            total.open += snapshot["open"]
            total.refused += snapshot["refused"]
            total.waiting += snapshot["waiting"]
            total.errors.update(snapshot["errors"])
        return total


class _Collector(Collector):
    """Turns the plain counters into metric families at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        engine = self._metrics.engine
        front = self._metrics.frontends()
        requests = CounterMetricFamily(
            "bourse_requests", "Requests answered, by outcome", labels=["outcome"]
        )
        requests.add_metric(["applied"], engine.applied)
        requests.add_metric(["refused"], engine.refused + front.refused)
        yield requests
        yield CounterMetricFamily("bourse_orders", "Orders opened", value=engine.orders)
        yield CounterMetricFamily(
            "bourse_fills", "Fills (one per pair of orders)", value=engine.fills
        )
        errors = CounterMetricFamily(
            "bourse_errors", "<error> elements sent, by code", labels=["code"]
        )
        for code, count in sorted((engine.errors + front.errors).items()):
            errors.add_metric([code], count)
        yield errors
        yield CounterMetricFamily(
            "bourse_connections_accepted", "Client connections accepted", value=front.accepted
        )
        yield GaugeMetricFamily("bourse_connections", "Open client connections", value=front.open)
        yield GaugeMetricFamily(
            "bourse_batch_filling_requests",
            "Requests applied and waiting for the next commit",
            value=self._metrics.filling(),
        )
        yield GaugeMetricFamily(
            "bourse_projection_backlog_rows",
            "Rows of committed batches not yet written to the tables",
            value=self._metrics.projection_backlog(),
        )
        yield GaugeMetricFamily(
            "bourse_orders_in_memory",
            "Orders the engine holds: open ones, and closed ones not yet in the tables",
            value=self._metrics.orders_in_memory(),
        )
        yield GaugeMetricFamily(
            "bourse_gateway_waiting_requests",
            "Requests gateways sent to the engine and not yet answered",
            value=front.waiting,
        )


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


def serve_metrics(
    metrics: Metrics, host: str, port: int, ready: Callable[[], bool]
) -> tuple[WSGIServer, int]:
    """Serve ``/metrics`` and ``/healthz`` (200 when ``ready()``, else 503)
    from a daemon thread; the server and its port."""
    exposition = make_wsgi_app(metrics.registry)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == "/healthz":
            healthy = ready()
            status = "200 OK" if healthy else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ready\n" if healthy else b"not ready\n"]
        return exposition(environ, start_response)

    server = make_server(host, port, application, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server, server.server_port
