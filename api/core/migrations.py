"""Ordered SQL migrations (api/core/migrations/NNNN_name.sql), applied once each, safely from several nodes."""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

# Any constant works; it keeps two nodes starting together from migrating at the same time.
_ADVISORY_LOCK = 0x50554C5345455200


def available() -> list[tuple[str, str]]:
    """(name, sql) of every migration shipped with the package, in order."""
    folder = resources.files("api.core") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations not yet applied; returns their names. Idempotent."""
    await conn.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        applied = []
        for name, sql in available():
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            log.info("migration applied", extra={"migration": name})
            applied.append(name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK)
