"""Registration cannot starve the server: limited per address, hashed off the loop before any database
connection is taken, and a bounded number of hashes at once (the rest refused with 503 auth_busy)."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import uuid
from dataclasses import replace

import asyncpg
from aiohttp.test_utils import TestClient

from api.accounts.keys import PASSWORDS
from api.core.keys import DATABASE
from config import Settings
from tests.api.helpers import PASSWORD
from tests.reading_steps import quick_user, running_app, wait_for


async def _register(http: TestClient, address: str | None = None) -> tuple[int, dict]:
    resp = await http.post("/api/auth/register", json={
        "email": f"new-{uuid.uuid4().hex[:8]}@example.test", "password": PASSWORD, "displayName": "New",
        "role": "client"}, headers={"X-Forwarded-For": address} if address else {})
    return resp.status, await resp.json()


async def test_registrations_are_limited_per_address(settings: Settings) -> None:
    trusting = replace(settings, registrations_per_hour=3, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    async with running_app(trusting) as http:
        statuses = [(await _register(http, "198.51.100.7"))[0] for _ in range(4)]
        assert statuses == [201, 201, 201, 429]
        status, body = await _register(http, "198.51.100.7")
        assert status == 429 and body["error"]["code"] == "rate_limited"
        assert (await _register(http, "203.0.113.5"))[0] == 201, "another address is not affected"


class Gate:
    """Holds the app's hashing threads until opened, so a test can look at what registrations hold meanwhile."""

    def __init__(self, http: TestClient, workers: int) -> None:
        self._open = threading.Event()
        self._blocked = [http.app[PASSWORDS]._executor.submit(self._open.wait) for _ in range(workers)]

    def open(self) -> None:
        self._open.set()


async def test_a_registration_waiting_for_its_hash_holds_no_database_connection(settings: Settings,
                                                                                pool: asyncpg.Pool) -> None:
    async with running_app(settings, password_hash_workers=1, password_hash_queue=10) as http:
        reader = await quick_user(pool, "client")
        gate = Gate(http, 1)
        passwords = http.app[PASSWORDS]
        app_pool = http.app[DATABASE].pool
        try:
            storm = [asyncio.ensure_future(_register(http)) for _ in range(5)]

            async def queued() -> bool:
                return passwords.in_flight == 5

            await wait_for(queued)

            # Background sweepers borrow a connection for a moment now and then, so the pool is watched
            # until it is idle: five registrations holding a connection each would keep it busy until the
            # gate opens, and this wait would time out.
            async def idle() -> bool:
                return app_pool.get_size() == app_pool.get_idle_size()

            await wait_for(idle)
            assert passwords.in_flight == 5, "the registrations are still waiting for their hashes"
            # Meanwhile an authenticated read is answered at once.
            resp = await http.get("/api/webrtc/client/balance", headers=reader.headers)
            assert resp.status == 200
        finally:
            gate.open()
        assert [status for status, _ in await asyncio.gather(*storm)] == [201] * 5


async def test_registrations_beyond_the_hashing_queue_are_refused_at_once(settings: Settings) -> None:
    async with running_app(settings, password_hash_workers=1, password_hash_queue=1) as http:
        gate = Gate(http, 1)
        passwords = http.app[PASSWORDS]
        try:
            first = [asyncio.ensure_future(_register(http)) for _ in range(2)]

            async def full() -> bool:
                return passwords.in_flight == 2

            await wait_for(full)
            status, body = await _register(http)
            assert status == 503 and body["error"]["code"] == "auth_busy"
        finally:
            gate.open()
        assert [status for status, _ in await asyncio.gather(*first)] == [201, 201]
