"""A benchmark's scratch PostgreSQL database: made on a server the run names, dropped when the run ends.

Not a benchmark itself: the programs beside it share it (``from bench.scratch import ...``).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg

from api.core.migrations import migrate


def database_url(server_url: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``server_url``."""
    return urlunsplit(urlsplit(server_url)._replace(path="/" + name))


async def create_database(server_url: str, name: str, *, migrated: bool) -> str:
    """Create database ``name`` (with our schema when ``migrated``; a ``soulseer serve`` migrates at start
    anyway); its URL."""
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = database_url(server_url, name)
    if migrated:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
    return url


async def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name``, even while a server process that was killed still holds a connection to it."""
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
