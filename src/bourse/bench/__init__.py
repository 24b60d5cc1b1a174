"""Benchmarks and fault drills: load generation, load clients, reports.

Offers the seeded workload (``workload``), its requests as the protocol's
XML (``xml``), the load client and its report (``run``, ``report``,
``plots``), market-data subscribers that follow the feed during a load
(``subscribers`` in a process of their own, ``feed_tally``, driven from
``feed_watch``), scaling runs over gateway counts (``scale``), the engine's
ceiling, crash cycles (``crash``, with the clients and checks of what was
acknowledged in ``acknowledged``), recovery and write-cost measurements,
and a null server that answers without an exchange.

May import: anything of ours. Nothing imports it but its own modules and
the command line (``bourse.cli`` and its ``bourse.commands`` modules), so
the server never loads it.
"""
