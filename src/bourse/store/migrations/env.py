"""Alembic environment: migrations run on a connection handed in by bourse.

bourse applies migrations itself (at server start and by ``bourse db
upgrade``), so there is no alembic.ini and no URL here: the caller opens the
connection and passes it through ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection = context.config.attributes["connection"]
assert isinstance(connection, Connection)
context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
