"""Replay ``generated/`` against a running server (the seed's scalability tests).

Usage, from this directory, with the server listening on localhost:12345::

    python3 generate_tests.py
    python3 client.py [--clients N] [--host H] [--port P]

sends ``generated/setup.bin`` and then ``generated/requests.bin`` through
``bourse.bench.replay``, prints requests, seconds, requests/s and p50/p99
latency, and exits 1 if any reply is missing or malformed. Replies are
checked with lxml, which only the project's venv has: under another
``python3`` this script re-runs itself with ``../.venv/bin/python``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV_PYTHON = HERE.parent / ".venv" / "bin" / "python"

try:
    import lxml  # noqa: F401 - only probes whether this python has the dependencies
except ImportError:
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve():
        os.execv(VENV_PYTHON, [str(VENV_PYTHON), __file__, *sys.argv[1:]])  # noqa: S606
    raise

try:
    import bourse  # noqa: F401 - only probes whether bourse is installed
except ImportError:
    sys.path.insert(0, str(HERE.parent / "src"))

from bourse.bench.replay import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(default_directory=HERE / "generated"))
