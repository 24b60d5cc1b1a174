"""How many commands per second the pure engine applies, in process.

The stream (10 symbols, 1,000 accounts; orders around a drifting mid so
many cross and fill, plus queries and cancels of earlier orders) is
generated before the clock starts. The engine runs under the server's
garbage-collector settings. After each timed run the invariants are
audited, so a fast wrong engine cannot pass. ``make bench`` times these;
the ordinary suite runs each once as a test.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bourse.bench.workload import WorkloadShape, setup_request, transaction_stream
from bourse.core.audit import audit
from bourse.core.commands import TransactionsRequest
from bourse.core.errors import ErrorCode
from bourse.core.exchange import Exchange
from bourse.core.results import Error
from bourse.server.tuning import tune_garbage_collector

COMMANDS = 100_000


@pytest.fixture(autouse=True)
def server_gc_settings() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def _fresh_engine(shape: WorkloadShape) -> Exchange:
    engine = Exchange()
    engine.apply(setup_request(shape), now=0)
    tune_garbage_collector()
    return engine


def _apply_all(engine: Exchange, stream: list[TransactionsRequest]) -> set[ErrorCode]:
    """Apply the stream; the kinds of error met along the way."""
    errors: set[ErrorCode] = set()
    apply = engine.apply
    for now, request in enumerate(stream):
        errors.update(result.code for result in apply(request, now) if isinstance(result, Error))
    return errors


@pytest.mark.parametrize("orders_per_request", [1, 10])
def test_engine_commands_per_second(benchmark: BenchmarkFixture, orders_per_request: int) -> None:
    shape = WorkloadShape(
        requests=COMMANDS // orders_per_request, orders_per_request=orders_per_request
    )
    stream = transaction_stream(shape, seed=7)
    engines: list[Exchange] = []

    def setup() -> tuple[tuple[Exchange, list[TransactionsRequest]], dict[str, object]]:
        engines.append(_fresh_engine(shape))
        return (engines[-1], stream), {}

    errors = benchmark.pedantic(  # type: ignore[no-untyped-call]  # the plugin is untyped
        _apply_all, setup=setup, rounds=3, iterations=1
    )
    assert errors <= {ErrorCode.NOTHING_TO_CANCEL}  # cancels of orders already filled
    engine = engines[-1]
    assert audit(engine) == []
    fills = sum(len(order.executions) for order in engine.orders.values()) // 2
    assert fills > COMMANDS // 10
    if benchmark.stats is not None:
        mean = benchmark.stats.stats.mean
        benchmark.extra_info["commands_per_second"] = round(COMMANDS / mean)
        benchmark.extra_info["fills"] = fills
