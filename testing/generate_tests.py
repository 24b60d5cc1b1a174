"""Generate the load files for ``client.py`` (the seed's scalability tests).

Usage, from this directory::

    python3 generate_tests.py

writes ``generated/setup.bin`` (framed ``<create>`` requests: accounts,
symbols, positions), ``generated/requests.bin`` (``N`` framed
``<transactions>`` requests) and ``generated/manifest.json``, with seed 1,
through ``bourse.bench.gen`` (the same code as ``bourse gen``). Set ``N``
below; the environment variable ``BOURSE_GEN_N``, if set, overrides it (the
tests use it to stay small). Runs with the project's venv python or with
plain ``python3`` (it then imports bourse from ``../src``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

N = 5000

HERE = Path(__file__).resolve().parent

try:
    import bourse  # noqa: F401 - only probes whether bourse is installed
except ImportError:
    sys.path.insert(0, str(HERE.parent / "src"))

from bourse.bench.gen import summary, write_load_files  # noqa: E402
from bourse.bench.workload import WorkloadShape  # noqa: E402


def main() -> int:
    """Write the files for ``N`` (or ``BOURSE_GEN_N``) requests."""
    requests = int(os.environ.get("BOURSE_GEN_N", N))
    out = HERE / "generated"
    print(summary(out, write_load_files(out, WorkloadShape(requests=requests), seed=1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
