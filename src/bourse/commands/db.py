"""``bourse db upgrade``: apply the schema migrations and exit (``bourse
serve`` does it at start too). It takes ``serve``'s database options, so it
upgrades the database the server would use.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from bourse.commands.serve import DATABASE_OPTIONS
from bourse.options import add_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``upgrade`` action and its database options."""
    actions = parser.add_subparsers(dest="action", required=True)
    upgrade = actions.add_parser("upgrade", help="apply the schema migrations and exit")
    add_options(upgrade, DATABASE_OPTIONS)
    upgrade.set_defaults(run=_upgrade)


def _upgrade(args: argparse.Namespace) -> int:
    from bourse.store.selection import open_database  # noqa: PLC0415
    from bourse.store.store import Store  # noqa: PLC0415

    async def upgrade(url: str) -> None:
        store = Store(url)
        try:
            await store.migrate()
        finally:
            await store.close()

    with open_database(args.database_url, args.data_dir) as database:
        asyncio.run(upgrade(database.url))
    logging.getLogger("bourse").info("database schema is up to date")
    return 0
