"""Users for billing tests, inserted directly (no password hashing): billing only needs their ids."""

from __future__ import annotations

import uuid

import asyncpg


async def make_user(db: asyncpg.Pool | asyncpg.Connection, role: str = "client") -> str:
    email = f"{role}-{uuid.uuid4().hex[:12]}@example.test"
    user_id = await db.fetchval(
        "INSERT INTO users (email, password_hash, display_name, role) VALUES ($1, 'x', $2, $3) RETURNING id::text",
        email, role.title(), role)
    return str(user_id)


async def make_pair(db: asyncpg.Pool | asyncpg.Connection) -> tuple[str, str]:
    """(client_id, reader_id)."""
    return await make_user(db, "client"), await make_user(db, "reader")
