from __future__ import annotations

import asyncpg

from api.core.migrations import available, migrate


async def test_migrations_are_ordered_and_idempotent(pool: asyncpg.Pool) -> None:
    names = [name for name, _ in available()]
    assert names == sorted(names) and names[0].startswith("0001")
    async with pool.acquire() as conn:
        assert await migrate(conn) == []
        applied = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
    assert applied == set(names)


async def test_seed_tables_exist(pool: asyncpg.Pool) -> None:
    tables = {r["table_name"] for r in await pool.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert {"rtc_sessions", "reader_rates", "client_balances", "reader_availability", "notifications",
            "users", "auth_sessions"} <= tables


async def test_a_balance_can_never_go_negative(pool: asyncpg.Pool) -> None:
    user = await pool.fetchval(
        "INSERT INTO users (email, password_hash, display_name, role) VALUES ('x@y.test', 'h', 'X', 'client')"
        " RETURNING id")
    await pool.execute("INSERT INTO client_balances (client_id, balance_cents) VALUES ($1, 5)", user)
    try:
        await pool.execute("UPDATE client_balances SET balance_cents = balance_cents - 6 WHERE client_id = $1", user)
    except asyncpg.CheckViolationError:
        pass
    else:
        raise AssertionError("a negative balance was accepted")
