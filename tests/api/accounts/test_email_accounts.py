"""Accounts by e-mail over HTTP: verifying the address, resetting a password, changing the password and the
address, and deleting the account; the links are signed, single-use and expiring; receipts are mailed."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestClient

from api.accounts.email_links import sign, verify_signature
from billing import ledger
from config import Settings
from tests.api.helpers import PASSWORD, login, register
from tests.mailbox import body_of, token_in, wait_for_mails

NEW_PASSWORD = "a whole new passphrase"


def folder(settings: Settings) -> Path:
    return settings.data_dir / "mail"


async def mails_to(settings: Settings, address: str, count: int) -> list:  # type: ignore[type-arg]
    while True:
        found = [m for m in await wait_for_mails(folder(settings), 1) if m["To"] == address]
        if len(found) >= count:
            return found
        await wait_for_mails(folder(settings), len(list(folder(settings).glob("*.eml"))) + 1)


def bearer(session: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {"Authorization": f"Bearer {session['token']}"}


async def test_registering_mails_a_link_that_verifies_the_address_once(client: TestClient, settings: Settings,
                                                                       pool: asyncpg.Pool) -> None:
    user = await register(client, "client", name="Ada")
    [message] = await mails_to(settings, user["email"], 1)
    token = token_in(message)
    assert await pool.fetchval("SELECT email_verified_at FROM users WHERE id = $1", user["id"]) is None
    resp = await client.post("/api/auth/verify-email", json={"token": token})
    assert resp.status == 200 and (await resp.json())["email"] == user["email"]
    assert await pool.fetchval("SELECT email_verified_at FROM users WHERE id = $1", user["id"]) is not None
    again = await client.post("/api/auth/verify-email", json={"token": token})
    assert again.status == 422 and (await again.json())["error"]["code"] == "invalid_token"
    for forged in (token[:-2] + "xx", token.replace(".", "!"), "", 5, "a.b.c", token + "."):
        resp = await client.post("/api/auth/verify-email", json={"token": forged})
        assert resp.status == 422, forged


def test_a_signature_binds_the_id_the_expiry_and_the_purpose() -> None:
    key, other = b"k" * 32, b"o" * 32
    token_id = str(uuid.uuid4())
    later = int(time.time()) + 60
    token = sign(key, token_id, later, "reset")
    assert verify_signature(key, token, "reset") == token_id
    assert verify_signature(other, token, "reset") is None
    assert verify_signature(key, token, "verify") is None
    assert verify_signature(key, token.replace(str(later), str(later + 3600)), "reset") is None
    assert verify_signature(key, sign(key, token_id, later - 120, "reset"), "reset") is None  # expired


async def test_a_password_reset_works_once_and_signs_out_everywhere(client: TestClient, settings: Settings,
                                                                    pool: asyncpg.Pool) -> None:
    user = await register(client, "client", name="Ada")
    session = await login(client, user["email"])
    unknown = await client.post("/api/auth/password-reset", json={"email": "nobody@example.test"})
    known = await client.post("/api/auth/password-reset", json={"email": user["email"].upper()})
    assert unknown.status == known.status == 202 and await unknown.json() == await known.json()
    messages = await mails_to(settings, user["email"], 2)
    reset = next(m for m in messages if m["Subject"] == "Reset your SoulSeer password")
    token = token_in(reset)
    weak = await client.post("/api/auth/password-reset/confirm", json={"token": token, "password": "password"})
    assert weak.status == 422 and (await weak.json())["error"]["field"] == "password"
    resp = await client.post("/api/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    assert resp.status == 200, await resp.text()
    assert (await client.get("/api/auth/me", headers=bearer(session))).status == 401
    again = await client.post("/api/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    assert again.status == 422
    client.session.cookie_jar.clear()
    old = await client.post("/api/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert old.status == 401
    await login(client, user["email"], NEW_PASSWORD)
    assert not await pool.fetchval("SELECT EXISTS (SELECT 1 FROM mail_outbox WHERE to_address = 'nobody@example.test')")


async def test_an_expired_reset_link_is_refused(client: TestClient, settings: Settings, pool: asyncpg.Pool) -> None:
    user = await register(client, "client")
    await client.post("/api/auth/password-reset", json={"email": user["email"]})
    messages = await mails_to(settings, user["email"], 2)
    token = token_in(next(m for m in messages if "Reset" in m["Subject"]))
    await pool.execute("UPDATE email_tokens SET expires_at = now() - interval '1 second' WHERE purpose = 'reset'")
    resp = await client.post("/api/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    assert resp.status == 422 and (await resp.json())["error"]["code"] == "invalid_token"


async def test_changing_the_password_needs_the_current_one_and_ends_the_other_logins(client: TestClient) -> None:
    user = await register(client, "reader")
    mine, other = await login(client, user["email"]), await login(client, user["email"])
    client.session.cookie_jar.clear()
    wrong = await client.post("/api/account/password", headers=bearer(mine),
                              json={"currentPassword": "not it at all", "newPassword": NEW_PASSWORD})
    assert wrong.status == 403 and (await wrong.json())["error"]["code"] == "wrong_password"
    resp = await client.post("/api/account/password", headers=bearer(mine),
                             json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD})
    assert resp.status == 200, await resp.text()
    assert (await client.get("/api/auth/me", headers=bearer(mine))).status == 200
    assert (await client.get("/api/auth/me", headers=bearer(other))).status == 401
    await login(client, user["email"], NEW_PASSWORD)


async def test_changing_the_address_takes_effect_when_the_new_one_confirms(client: TestClient,
                                                                           settings: Settings) -> None:
    user = await register(client, "client", name="Ada")
    taken = await register(client, "client")
    session = await login(client, user["email"])
    client.session.cookie_jar.clear()
    clash = await client.post("/api/account/email", headers=bearer(session),
                              json={"newEmail": taken["email"], "currentPassword": PASSWORD})
    assert clash.status == 409 and (await clash.json())["error"]["field"] == "newEmail"
    new = f"ada-{uuid.uuid4().hex[:6]}@example.test"
    resp = await client.post("/api/account/email", headers=bearer(session),
                             json={"newEmail": new, "currentPassword": PASSWORD})
    assert resp.status == 202
    [confirm] = await mails_to(settings, new, 1)
    notices = await mails_to(settings, user["email"], 2)
    assert any(new in body_of(m) for m in notices)
    assert (await client.post("/api/auth/login", json={"email": new, "password": PASSWORD})).status == 401
    resp = await client.post("/api/auth/confirm-email", json={"token": token_in(confirm)})
    assert resp.status == 200 and (await resp.json())["email"] == new
    await login(client, new)
    assert (await client.post("/api/auth/login", json={"email": user["email"], "password": PASSWORD})).status == 401


async def test_deleting_an_account_erases_personal_data_and_keeps_the_ledger(client: TestClient, settings: Settings,
                                                                             pool: asyncpg.Pool) -> None:
    user = await register(client, "client", name="Ada Lovelace")
    session = await login(client, user["email"])
    client.session.cookie_jar.clear()
    reader = await register(client, "reader", name="Luna")
    await pool.execute("UPDATE reader_rates SET flat_30_cents = 3000 WHERE reader_id = $1", reader["id"])
    await ledger.deposit(pool, client_id=user["id"], cents=3000, key=f"test:{uuid.uuid4()}", source="manual")
    slot = await pool.fetchval("INSERT INTO reader_slots (reader_id, starts_at, minutes) VALUES ($1, $2, 30)"
                               " RETURNING id", reader["id"], datetime.now(UTC) + timedelta(days=3))
    resp = await client.post(f"/api/webrtc/client/slots/{slot}/book", headers=bearer(session),
                             json={"sessionType": "chat", "expectedCents": 3000})
    assert resp.status == 201, await resp.text()
    session_id = (await resp.json())["session"]["id"]
    receipts = await mails_to(settings, user["email"], 2)
    assert any(m["Subject"] == "Receipt: your reading with Luna" and "$30.00" in body_of(m) for m in receipts)
    refused = await client.post("/api/account/delete", headers=bearer(session), json={"currentPassword": PASSWORD})
    assert refused.status == 409 and (await refused.json())["error"]["code"] == "reading_open"
    await client.post(f"/api/webrtc/client/cancel-session/{session_id}", headers=bearer(session))
    refused = await client.post("/api/account/delete", headers=bearer(session), json={"currentPassword": PASSWORD})
    assert refused.status == 409 and (await refused.json())["error"]["code"] == "balance_not_empty"
    await client.put(f"/api/favourites/{reader['id']}", headers=bearer(session))
    assert await pool.fetchval("SELECT count(*) FROM favourites WHERE client_id = $1", user["id"]) == 1
    # Spend the refund back to zero so the wallet is empty (a withdrawal would do the same).
    await ledger.charge(pool, client_id=user["id"], reader_id=reader["id"], cents=3000, key=f"t:{uuid.uuid4()}",
                        kind="message", ref="test")
    wrong = await client.post("/api/account/delete", headers=bearer(session), json={"currentPassword": "nope nope"})
    assert wrong.status == 403
    resp = await client.post("/api/account/delete", headers=bearer(session), json={"currentPassword": PASSWORD})
    assert resp.status == 200, await resp.text()
    row = await pool.fetchrow("SELECT email, display_name, deleted_at FROM users WHERE id = $1", user["id"])
    assert row["email"] == f"deleted-{user['id']}@deleted.invalid" and row["display_name"] == "Deleted user"
    assert row["deleted_at"] is not None
    for table in ("auth_sessions", "notifications", "email_tokens"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", user["id"]) == 0
    assert await pool.fetchval("SELECT count(*) FROM favourites WHERE client_id = $1", user["id"]) == 0
    assert await pool.fetchval("SELECT count(*) FROM ledger_transactions WHERE client_id = $1", user["id"]) >= 3
    assert (await client.get("/api/auth/me", headers=bearer(session))).status == 401
    assert (await client.post("/api/auth/login", json={"email": user["email"], "password": PASSWORD})).status == 401
    goodbye = await mails_to(settings, user["email"], 3)
    assert any(m["Subject"] == "Your SoulSeer account was deleted" for m in goodbye)
