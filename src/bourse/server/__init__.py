"""``bourse serve``: processes, sockets, batching and supervision.

Offers the server's configuration (``config.ServerConfig``, where every
option is declared), the engine process and its committer (``app``,
``service``), the gateway processes and their supervision (``gateway``,
``supervisor``, ``ipc``), the client-facing side of a process
(``frontend``), and the decisions that need the server's settings: limits,
admission and access control, TLS and metrics.

May import: ``bourse.protocol``, ``bourse.store``, ``bourse.core``, and the
top-level ``bourse.options`` and ``bourse.logs`` it is configured and logs
with. Never the benchmarks.
"""
