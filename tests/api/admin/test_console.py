"""The operator console over HTTP: role-checked, every write with a reason and an audit row; suspension, goodwill
refunds split 70/30, the trial balance summing to zero, payouts and disputes visible."""

from __future__ import annotations

import uuid

import asyncpg
from aiohttp.test_utils import TestClient

from billing import ledger
from tests.api.users import quick_user

PAGES = ("/admin/users", "/admin/readings", "/admin/ledger", "/admin/payouts", "/admin/disputes", "/admin/gifts",
         "/admin/cluster")
APIS = ("/api/admin/users", "/api/admin/readings", "/api/admin/ledger", "/api/admin/payouts", "/api/admin/disputes",
        "/api/admin/audit")


async def _reading(pool: asyncpg.Pool, client: str, reader: str, minutes: int, rate: int) -> str:
    reading = str(await pool.fetchval(
        "INSERT INTO rtc_sessions (client_id, reader_id, session_type, rate_cents, status)"
        " VALUES ($1, $2, 'chat', $3, 'ended') RETURNING id", client, reader, rate))
    await ledger.deposit(pool, client_id=client, cents=minutes * rate, key=f"dep:{reading}")
    for n in range(minutes):
        await ledger.charge(pool, client_id=client, reader_id=reader, cents=rate, key=f"reading:{reading}:{n}",
                            kind="reading_minute", ref=reading)
    return reading


async def test_every_console_page_and_api_needs_the_admin_role(client: TestClient) -> None:
    _, reader = await quick_user(client, "reader")
    _, admin = await quick_user(client, "admin")
    for path in APIS:
        assert (await client.get(path)).status == 401, path
        assert (await client.get(path, headers=reader)).status == 403, path
        assert (await client.get(path, headers=admin)).status == 200, path
    for path in PAGES:
        assert (await client.get(path, headers=reader, allow_redirects=False)).status == 302, path
        assert (await client.get(path, headers=admin)).status == 200, path


async def test_a_search_with_a_nul_character_is_a_clear_4xx_not_a_500(client: TestClient) -> None:
    """The REST fuzz test's find (seed 158164461): ``q=\\x00`` reached PostgreSQL and failed as a 500."""
    _, admin = await quick_user(client, "admin")
    for path in ("/api/admin/users", "/api/admin/readings"):
        resp = await client.get(path, params={"q": "a\x00b"}, headers=admin)
        assert resp.status == 422, path
        assert (await resp.json())["error"]["field"] == "q"
    for path in ("/admin/users", "/admin/readings"):
        assert (await client.get(path, params={"q": "\x00"}, headers=admin)).status < 500, path


async def test_a_suspended_user_is_locked_out_and_reinstated_with_an_audit_trail(client: TestClient) -> None:
    user, headers = await quick_user(client, "client")
    admin, admin_headers = await quick_user(client, "admin")
    no_reason = await client.post(f"/api/admin/users/{user['id']}/suspend", headers=admin_headers, json={})
    assert no_reason.status == 422
    resp = await client.post(f"/api/admin/users/{user['id']}/suspend", headers=admin_headers,
                             json={"reason": "chargeback fraud"})
    assert resp.status == 200
    assert (await client.get("/api/webrtc/client/balance", headers=headers)).status == 401
    await client.post(f"/api/admin/users/{user['id']}/reinstate", headers=admin_headers, json={"reason": "cleared"})
    trail = (await (await client.get("/api/admin/audit", headers=admin_headers)).json())["audit"]
    assert [(a["action"], a["reason"], a["admin"]) for a in trail[:2]] == [
        ("user_reinstated", "cleared", admin["email"]), ("user_suspended", "chargeback fraud", admin["email"])]


async def test_a_goodwill_refund_is_split_back_70_30_and_audited(client: TestClient, pool: asyncpg.Pool) -> None:
    user, _ = await quick_user(client, "client")
    reader, _ = await quick_user(client, "reader")
    _, admin_headers = await quick_user(client, "admin")
    reading = await _reading(pool, user["id"], reader["id"], minutes=3, rate=100)
    resp = await client.post(f"/api/admin/readings/{reading}/refund", headers=admin_headers,
                             json={"amountCents": 150, "reason": "poor connection", "requestId": "r1"})
    assert resp.status == 201, await resp.text()
    refunds = (await resp.json())["refunds"]
    assert sum(r["amountCents"] for r in refunds) == 150
    assert sum(r["readerCents"] for r in refunds) == 105 and sum(r["platformCents"] for r in refunds) == 45
    retry = await client.post(f"/api/admin/readings/{reading}/refund", headers=admin_headers,
                              json={"amountCents": 150, "reason": "poor connection", "requestId": "r1"})
    assert retry.status == 201
    assert await ledger.balance(pool, user["id"]) == 150
    too_much = await client.post(f"/api/admin/readings/{reading}/refund", headers=admin_headers,
                                 json={"amountCents": 151, "reason": "more", "requestId": "r2"})
    assert too_much.status == 409
    assert await pool.fetchval("SELECT count(*) FROM admin_audit WHERE action = 'goodwill_refund'") == 1
    details = (await (await client.get(f"/api/admin/readings/{reading}", headers=admin_headers)).json())["reading"]
    assert [m["kind"] for m in details["movements"]].count("refund") == 2


async def test_the_trial_balance_sums_to_zero(client: TestClient, pool: asyncpg.Pool) -> None:
    user, _ = await quick_user(client, "client")
    reader, _ = await quick_user(client, "reader")
    _, admin_headers = await quick_user(client, "admin")
    await _reading(pool, user["id"], reader["id"], minutes=2, rate=333)
    body = await (await client.get("/api/admin/ledger", headers=admin_headers)).json()
    assert body["totalCents"] == 0
    assert body["byKind"]["earnings"] == 2 * 233 and body["byKind"]["revenue"] == 2 * 100
    txn_id = await pool.fetchval("SELECT id::text FROM ledger_transactions LIMIT 1")
    one = await (await client.get(f"/api/admin/ledger/transactions/{txn_id}", headers=admin_headers)).json()
    assert sum(e["amount_cents"] for e in one["transaction"]["entries"]) == 0
    missing = await client.get(f"/api/admin/ledger/transactions/{uuid.uuid4()}", headers=admin_headers)
    assert missing.status == 404
