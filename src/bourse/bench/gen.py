"""``bourse gen``: a seeded workload written to files any client can send.

``bourse bench`` generates its requests in memory and needs this project's
client; load files let other tools (the seed's ``testing/client.py``, a C
load generator, ``nc``) replay exactly the same work. The files hold the
protocol's framed bytes, so a client only has to copy them to a socket.
They are a pure function of the settings and the seed (no timestamps), so
the same command always writes the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bourse.bench.workload import WorkloadShape, setup_request, transaction_stream
from bourse.bench.xml import create_xml, frame, transactions_xml
from bourse.core.commands import CancelOrder, PlaceOrder, QueryOrder, TransactionsRequest

SETUP_FILE = "setup.bin"
REQUESTS_FILE = "requests.bin"
MANIFEST_FILE = "manifest.json"

ORDER_IDS_NOTE = (
    "Queries and cancels in requests.bin name order ids assuming setup.bin and then "
    "requests.bin are applied, in file order, to a fresh exchange (order ids counting "
    "from 1); on a used exchange, or split over several connections, they may name "
    "other accounts' orders and get errors."
)


def framed_setup(shape: WorkloadShape) -> list[bytes]:
    """The framed ``<create>`` requests making the accounts, symbols and positions."""
    return [frame(xml) for xml in create_xml(setup_request(shape))]


def command_counts(stream: list[TransactionsRequest]) -> dict[str, int]:
    """How many orders, queries and cancels ``stream`` holds."""
    commands = [command for request in stream for command in request.commands]
    return {
        "orders": sum(isinstance(command, PlaceOrder) for command in commands),
        "queries": sum(isinstance(command, QueryOrder) for command in commands),
        "cancels": sum(isinstance(command, CancelOrder) for command in commands),
    }


def manifest(
    shape: WorkloadShape, seed: int, setup: list[bytes], stream: list[TransactionsRequest]
) -> dict[str, Any]:
    """What was generated, from what, so a reader of the files need not guess."""
    settings = {
        name: value if isinstance(value, int | float) else str(value)
        for name, value in asdict(shape).items()
    }
    return {
        "seed": seed,
        "settings": settings,
        "files": {"setup": SETUP_FILE, "requests": REQUESTS_FILE},
        "counts": {"setup_requests": len(setup), "requests": len(stream)} | command_counts(stream),
        "framing": "each request is its length in decimal bytes, a newline, then the XML",
        "order_ids": ORDER_IDS_NOTE,
    }


def write_load_files(out: Path, shape: WorkloadShape, seed: int) -> dict[str, Any]:
    """Write ``setup.bin``, ``requests.bin`` and ``manifest.json`` into ``out``
    (created if missing); return the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    setup = framed_setup(shape)
    stream = transaction_stream(shape, seed)
    (out / SETUP_FILE).write_bytes(b"".join(setup))
    (out / REQUESTS_FILE).write_bytes(
        b"".join(frame(transactions_xml(request)) for request in stream)
    )
    written = manifest(shape, seed, setup, stream)
    (out / MANIFEST_FILE).write_text(json.dumps(written, indent=2, sort_keys=True) + "\n")
    return written


def summary(out: Path, written: dict[str, Any]) -> str:
    """One line saying what ``write_load_files`` wrote and where."""
    counts = written["counts"]
    return (
        f"wrote {out}: {counts['setup_requests']} setup requests, {counts['requests']} "
        f"transactions requests ({counts['orders']} orders, {counts['queries']} queries, "
        f"{counts['cancels']} cancels), seed {written['seed']}"
    )
