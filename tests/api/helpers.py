"""Small steps that many API tests take: register, log in, call with a bearer token."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

PASSWORD = "correct horse battery"


async def register(client: TestClient, role: str = "client", *, name: str | None = None,
                   email: str | None = None) -> dict[str, Any]:
    email = email or f"{role}-{uuid.uuid4().hex[:8]}@example.test"
    resp = await client.post("/api/auth/register", json={
        "email": email, "password": PASSWORD, "displayName": name or role.title(), "role": role,
    })
    assert resp.status == 201, await resp.text()
    return (await resp.json())["user"]


async def login(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    resp = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def bearer_user(client: TestClient, role: str = "client", **kw: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """A new account and the Authorization header for it (bearer: no cookie, no CSRF)."""
    user = await register(client, role, **kw)
    session = await login(client, user["email"])
    client.session.cookie_jar.clear()
    return user, {"Authorization": f"Bearer {session['token']}"}
