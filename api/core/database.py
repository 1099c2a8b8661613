"""The PostgreSQL connection: a configured server, or an embedded one (pgserver) when none is configured."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import asyncpg

from config import Settings

log = logging.getLogger(__name__)

# What a database that is away raises (refused or dropped connections, a server shutting down): a background
# sweep that meets one is tried again at its next interval.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (OSError, asyncpg.PostgresError)


class EmbeddedPostgres:
    """A private PostgreSQL server in a data folder, so one command runs the whole platform."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._server: Any = None

    async def start(self) -> str:
        """Start (or reuse) the server and return its connection URI."""
        import pgserver  # optional at run time: only the embedded mode (no DATABASE_URL) needs its binaries

        pgdata = (self._data_dir / "pgdata").resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.to_thread(pgserver.get_server, pgdata, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        log.info("embedded postgresql ready", extra={"pgdata": str(pgdata)})
        return uri

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(server.cleanup)
            log.info("embedded postgresql stopped")


class Database:
    """Owns the asyncpg pool for the process, and the embedded server behind it when there is one."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._embedded: EmbeddedPostgres | None = None
        self._pool: asyncpg.Pool | None = None
        self.url: str | None = settings.database_url

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("database is not open")
        return self._pool

    async def open(self, *, min_size: int = 2, max_size: int = 20) -> None:
        if self.url is None:
            self._embedded = EmbeddedPostgres(self._settings.data_dir)
            self.url = await self._embedded.start()
        self._pool = await asyncpg.create_pool(self.url, min_size=min_size, max_size=max_size, init=_init)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
        if self._embedded is not None:
            embedded, self._embedded = self._embedded, None
            await embedded.stop()

    async def ping(self) -> bool:
        try:
            async with self.pool.acquire(timeout=2) as conn:
                return bool(await conn.fetchval("SELECT 1", timeout=2) == 1)
        except (TimeoutError, OSError, asyncpg.PostgresError, RuntimeError):
            return False


async def _init(conn: asyncpg.Connection) -> None:
    """Decode json/jsonb columns to Python values on every pooled connection."""
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(typename, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
