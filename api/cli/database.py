"""Running one piece of operator work against the database, outside the server: open, migrate, work, close."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from api.core.database import Database
from api.core.migrations import migrate
from config import Settings


async def with_database(settings: Settings, work: Callable[[Database], Awaitable[int]]) -> int:
    """Run ``work`` on a small pool of a migrated database; its result is the command's exit code."""
    database = Database(settings)
    await database.open(min_size=1, max_size=2)
    try:
        async with database.pool.acquire() as conn:
            await migrate(conn)
        return await work(database)
    finally:
        await database.close()
