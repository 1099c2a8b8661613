"""Shared fixtures: a real PostgreSQL with a clean, migrated database for every test, and the app on it."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.core.migrations import migrate
from config import Settings, load_settings
from tests.billing.invariants import assert_ledger_invariants


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """TEST_DATABASE_URL (or DATABASE_URL) when set; otherwise an embedded pgserver for the whole run."""
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="soulseer-pg-"))
    server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """TEST_REDIS_URL when set (shared with other runs: every test keeps to its own key prefix, never FLUSHDB);
    otherwise a private redis-server for the whole run."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    from api.cluster.embedded import EmbeddedRedis

    server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="soulseer-redis-")))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def redis_prefix(redis_server_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards (never the whole database)."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix

    async def clean() -> None:
        client = redis.Redis.from_url(redis_server_url)
        try:
            keys = [key async for key in client.scan_iter(match=prefix + "*", count=500)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()

    asyncio.run(clean())


@pytest.fixture
def cluster_settings(settings: Settings, redis_server_url: str, redis_prefix: str) -> Settings:
    """The test settings of a node in a cluster: Redis, under this test's prefix."""
    return replace(settings, redis_url=redis_server_url, redis_prefix=redis_prefix)


@pytest.fixture(scope="session")
def template_database(postgres_url: str) -> Iterator[str]:
    """A database migrated once per run; each test's database is a cheap copy of it."""
    name = f"soulseer_tpl_{os.getpid()}"

    async def create() -> None:
        admin = await asyncpg.connect(postgres_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(_with_database(postgres_url, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(create())
    yield name
    asyncio.run(_drop(postgres_url, name))


async def _drop(postgres_url: str, name: str) -> None:
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _check_ledger(url: str) -> None:
    """The money invariants on a test's database, if the test moved any money at all."""
    conn = await asyncpg.connect(url)
    try:
        has_ledger = await conn.fetchval("SELECT to_regclass('ledger_transactions') IS NOT NULL")
        if has_ledger and await conn.fetchval("SELECT EXISTS (SELECT 1 FROM ledger_transactions)"):
            await assert_ledger_invariants(conn)
    finally:
        await conn.close()


@pytest.fixture
def database_url(postgres_url: str, template_database: str) -> Iterator[str]:
    """A fresh database for this test alone, dropped afterwards; a test that left any ledger row in it gets
    the money invariants checked first (a failure is this test's teardown error), so no money test can forget
    them. Everything that depends on the database (app, pools, servers) has stopped by then."""
    name = f"soulseer_t_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        admin = await asyncpg.connect(postgres_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        finally:
            await admin.close()

    asyncio.run(create())
    url = _with_database(postgres_url, name)
    try:
        yield url
        asyncio.run(_check_ledger(url))
    finally:
        asyncio.run(_drop(postgres_url, name))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    base = load_settings({})
    # No CPU or loop-lag admission limit and no shedding in-process: the test process also runs the
    # clients' aiortc peers on the same loop, so its CPU and lag say nothing about the relay's
    # (tests/relay/test_load.py and tests/relay/test_overload.py cover them). No intro offer: tests of
    # per-minute billing charge from the first minute; tests/api/readings/test_intro_offer.py turns it on.
    return replace(base, database_url=database_url, data_dir=tmp_path / "data",
                   secret_key="test-secret-key-not-for-production", log_json=False, max_relay_cpu_percent=0,
                   max_relay_loop_lag_ms=0, relay_shed_lag_ms=0, intro_free_minutes=0)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    from api.core.database import _init

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10, init=_init)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    """The whole app on a real TCP port (127.0.0.1), with a cookie jar like a browser's."""
    app = create_app(settings)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client
