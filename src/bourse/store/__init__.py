"""Durable state in PostgreSQL: the batch writer, recovery's reads, the schema.

Offers the store (``store.Store``, which the server uses and nothing more:
commit a batch, load the exchange back), the one-statement batch writer
(``writer``), the loader recovery reads with (``loader``), the schema's
migrations (``migrations``) and the connection that applies them
(``database``), the invariants checked in SQL (``audit``), and the choice
between a given database and bourse's own embedded PostgreSQL
(``selection``, ``embedded``).

May import: ``bourse.core``. Never the protocol, the server or the
benchmarks.
"""
