from __future__ import annotations

import asyncpg
from aiohttp.test_utils import TestClient

from tests.api.users import quick_user


async def admin_headers(client: TestClient) -> dict[str, str]:
    """Admins cannot self-register: made directly, as ``soulseer create-admin`` does."""
    return (await quick_user(client, "admin"))[1]


async def test_the_catalogue_lists_active_gifts_cheapest_first(client: TestClient) -> None:
    _, ch = await quick_user(client)
    resp = await client.get("/api/gifts", headers=ch)
    gifts = (await resp.json())["gifts"]
    assert resp.status == 200 and len(gifts) >= 3
    assert set(gifts[0]) == {"id", "name", "priceCents", "icon"}
    prices = [g["priceCents"] for g in gifts]
    assert prices == sorted(prices) and all(isinstance(p, int) and p > 0 for p in prices)
    assert (await client.get("/api/gifts")).status == 401


async def test_an_admin_adds_reprices_and_retires_a_gift(client: TestClient, pool: asyncpg.Pool) -> None:
    admin = await admin_headers(client)
    _, ch = await quick_user(client)
    resp = await client.post("/api/admin/gifts", json={"name": "Lotus", "priceCents": 750, "icon": "🪷"},
                             headers=admin)
    assert resp.status == 201, await resp.text()
    lotus = (await resp.json())["gift"]
    assert lotus["active"] is True
    names = [g["name"] for g in (await (await client.get("/api/gifts", headers=ch)).json())["gifts"]]
    assert "Lotus" in names
    resp = await client.patch(f"/api/admin/gifts/{lotus['id']}", json={"priceCents": 800, "icon": "star"},
                              headers=admin)
    assert (await resp.json())["gift"]["priceCents"] == 800
    await client.patch(f"/api/admin/gifts/{lotus['id']}", json={"active": False}, headers=admin)
    names = [g["name"] for g in (await (await client.get("/api/gifts", headers=ch)).json())["gifts"]]
    assert "Lotus" not in names
    listed = (await (await client.get("/api/admin/gifts", headers=admin)).json())["gifts"]
    assert any(g["name"] == "Lotus" and g["active"] is False for g in listed)


async def test_only_admins_manage_the_catalogue(client: TestClient) -> None:
    _, ch = await quick_user(client)
    _, rh = await quick_user(client, "reader")
    for headers in (ch, rh):
        resp = await client.post("/api/admin/gifts", json={"name": "X", "priceCents": 1, "icon": "star"},
                                 headers=headers)
        assert resp.status == 403


async def test_bad_gifts_are_refused_with_the_field_named(client: TestClient, pool: asyncpg.Pool) -> None:
    admin = await admin_headers(client)
    cases = [({"name": "A", "priceCents": 0, "icon": "star"}, "priceCents"),
             ({"name": "A", "priceCents": 1.5, "icon": "star"}, "priceCents"),
             ({"name": "A", "priceCents": 100, "icon": "<script>"}, "icon"),
             ({"name": "A", "priceCents": 100, "icon": "unknown-svg"}, "icon"),
             ({"name": "", "priceCents": 100, "icon": "star"}, "name")]
    for body, field in cases:
        resp = await client.post("/api/admin/gifts", json=body, headers=admin)
        assert resp.status == 422 and (await resp.json())["error"]["field"] == field, body
    dup = await client.post("/api/admin/gifts", json={"name": "rose", "priceCents": 1, "icon": "rose"},
                            headers=admin)
    assert dup.status == 409
    missing = await client.patch("/api/admin/gifts/00000000-0000-0000-0000-000000000000",
                                 json={"active": False}, headers=admin)
    assert missing.status == 404
