from __future__ import annotations

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.api.helpers import PASSWORD, bearer_user, login, register


async def test_register_login_me_logout_with_cookie(client: TestClient) -> None:
    user = await register(client, "reader", name="Madame Iris")
    assert user["role"] == "reader" and user["displayName"] == "Madame Iris"
    session = await login(client, user["email"])
    assert session["token"] and session["csrfToken"]
    resp = await client.get("/api/auth/me")
    assert resp.status == 200
    assert (await resp.json())["user"]["id"] == user["id"]
    # A cookie-authenticated write without the CSRF token is refused...
    resp = await client.post("/api/auth/logout")
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "csrf_failed"
    # ...and with it, the login is revoked for good.
    resp = await client.post("/api/auth/logout", headers={"X-CSRF-Token": session["csrfToken"]})
    assert resp.status == 200
    resp = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {session['token']}"})
    assert resp.status == 401


async def test_login_cookie_is_httponly_and_samesite(client: TestClient) -> None:
    user = await register(client)
    resp = await client.post("/api/auth/login", json={"email": user["email"], "password": PASSWORD})
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


async def test_bearer_token_needs_no_csrf(client: TestClient) -> None:
    _, headers = await bearer_user(client)
    resp = await client.post("/api/auth/logout", headers=headers)
    assert resp.status == 200
    assert (await client.get("/api/auth/me", headers=headers)).status == 401


async def test_passwords_are_stored_as_argon2(client: TestClient, pool: asyncpg.Pool) -> None:
    user = await register(client)
    stored = await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user["id"])
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


async def test_wrong_password_and_unknown_email_look_the_same(client: TestClient) -> None:
    user = await register(client)
    a = await client.post("/api/auth/login", json={"email": user["email"], "password": "wrong-password"})
    b = await client.post("/api/auth/login", json={"email": "nobody@example.test", "password": "wrong-password"})
    assert a.status == b.status == 401
    assert (await a.json()) == (await b.json())


async def test_duplicate_email_is_409_case_insensitively(client: TestClient) -> None:
    user = await register(client)
    resp = await client.post("/api/auth/register", json={
        "email": user["email"].upper(), "password": PASSWORD, "displayName": "Again", "role": "client"})
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "email_taken"


async def test_admin_role_cannot_be_self_registered(client: TestClient, pool: asyncpg.Pool) -> None:
    resp = await client.post("/api/auth/register", json={
        "email": "boss@example.test", "password": PASSWORD, "displayName": "Boss", "role": "admin"})
    assert resp.status == 422
    assert (await resp.json())["error"]["field"] == "role"
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


async def test_guessing_one_account_from_one_address_backs_off(client: TestClient) -> None:
    user = await register(client)
    statuses = []
    for _ in range(7):
        resp = await client.post("/api/auth/login", json={"email": user["email"], "password": "wrong-password"})
        statuses.append(resp.status)
    assert statuses[:5] == [401] * 5  # SOULSEER_LOGIN_BACKOFF_AFTER free failures, then each waits
    assert 429 in statuses[5:]
    assert "Retry-After" in resp.headers
    # Even the right password waits out the backoff: otherwise it would not slow guessing down.
    resp = await client.post("/api/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert resp.status == 429


async def test_missing_auth_is_401(client: TestClient) -> None:
    resp = await client.get("/api/auth/me")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"
    resp = await client.get("/api/auth/me", headers={"Authorization": "Bearer not-a-real-token-at-all"})
    assert resp.status == 401


@pytest.mark.parametrize(("body", "field"), [
    ({"password": PASSWORD, "displayName": "X", "role": "client"}, "email"),
    ({"email": "not-an-email", "password": PASSWORD, "displayName": "X", "role": "client"}, "email"),
    ({"email": "a@example.test", "password": "short", "displayName": "X", "role": "client"}, "password"),
    ({"email": "a@example.test", "password": 12345678, "displayName": "X", "role": "client"}, "password"),
    ({"email": "a@example.test", "password": " " * 8, "displayName": "X", "role": "client"}, "password"),
    ({"email": "a@example.test", "password": "\t \n  \u3000   ", "displayName": "X", "role": "client"}, "password"),
    ({"email": "a@example.test", "password": "abababab", "displayName": "X", "role": "client"}, "password"),
    ({"email": "a@example.test", "password": "Password123", "displayName": "X", "role": "client"}, "password"),
    ({"email": "a@example.test", "password": "a@example.test", "displayName": "X", "role": "client"}, "password"),
    ({"email": "a@example.test", "password": PASSWORD, "displayName": "", "role": "client"}, "displayName"),
    ({"email": "a@example.test", "password": PASSWORD, "displayName": "x" * 81, "role": "client"}, "displayName"),
    ({"email": "a@example.test", "password": PASSWORD, "displayName": ["X"], "role": "client"}, "displayName"),
    ({"email": "a@example.test", "password": PASSWORD, "displayName": "X", "role": "wizard"}, "role"),
])
async def test_invalid_fields_are_422_naming_the_field(client: TestClient, pool: asyncpg.Pool,
                                                       body: dict, field: str) -> None:
    resp = await client.post("/api/auth/register", json=body)
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "invalid" and error["field"] == field
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


async def test_sql_looking_strings_are_just_text(client: TestClient, pool: asyncpg.Pool) -> None:
    name = "Robert'); DROP TABLE users;--"
    user = await register(client, name=name)
    assert user["displayName"] == name
    assert await pool.fetchval("SELECT display_name FROM users WHERE id = $1", user["id"]) == name
    resp = await client.post("/api/auth/login", json={"email": "' OR 1=1 --", "password": "' OR 1=1 --"})
    assert resp.status == 401


async def test_a_password_may_have_spaces_as_long_as_it_is_not_only_spaces(client: TestClient) -> None:
    resp = await client.post("/api/auth/register", json={
        "email": "spaces@example.test", "password": "  moon  tide  ", "displayName": "S", "role": "client"})
    assert resp.status == 201
    assert (await client.post("/api/auth/login", json={"email": "spaces@example.test",
                                                       "password": "  moon  tide  "})).status == 200
