from __future__ import annotations

import asyncpg
import pytest
from aiohttp.test_utils import TestClient


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
async def test_malformed_json_is_400(client: TestClient, pool: asyncpg.Pool, raw: bytes) -> None:
    resp = await client.post("/api/auth/register", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "malformed_json"
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


async def test_huge_body_is_413_json(client: TestClient, pool: asyncpg.Pool) -> None:
    resp = await client.post("/api/auth/register", data=b'{"email": "' + b"a" * 200_000 + b'"}',
                             headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


async def test_unknown_api_path_is_404_json(client: TestClient) -> None:
    resp = await client.get("/api/no/such/thing")
    assert resp.status == 404
    assert resp.content_type == "application/json"
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_wrong_method_is_405_json(client: TestClient) -> None:
    resp = await client.get("/api/auth/login")
    assert resp.status == 405
    assert (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_every_response_carries_a_request_id(client: TestClient) -> None:
    resp = await client.get("/healthz", headers={"X-Request-Id": "trace-abc-12345"})
    assert resp.headers["X-Request-Id"] == "trace-abc-12345"
    resp = await client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert resp.headers["X-Request-Id"] != "bad id with spaces"
