"""The gift catalogue: ``GET /api/gifts`` for everyone logged in, and its management by admins."""

from __future__ import annotations

import logging
import unicodedata
from typing import Any

import asyncpg
from aiohttp import web

from api.accounts.auth import require
from api.core import audit
from api.core import validation as v
from api.core.errors import Conflict, Invalid, NotFound
from api.core.keys import DATABASE
from api.core.openapi import operation

log = logging.getLogger(__name__)

# SVG icons shipped in web/static/icons/gifts/NAME.svg; any other icon must be an emoji.
BUILTIN_ICONS = frozenset({"candle", "crystal-ball", "heart", "moon", "rose", "star"})
MAX_PRICE_CENTS = 1_000_000

_COLUMNS = "id, name, price_cents, icon, active"


def gift_json(row: asyncpg.Record, *, admin: bool = False) -> dict[str, Any]:
    gift: dict[str, Any] = {"id": str(row["id"]), "name": row["name"], "priceCents": row["price_cents"],
                            "icon": row["icon"]}
    if admin:
        gift["active"] = row["active"]
    return gift


def icon(body: dict[str, Any], name: str = "icon") -> str:
    """A built-in SVG name, or a short emoji (no letters, digits, spaces or markup)."""
    value = v.text(body, name, max_len=40)
    if value in BUILTIN_ICONS:
        return value
    if len(value) <= 8 and all(ord(c) > 127 and unicodedata.category(c)[0] in "SMC" for c in value):
        return value
    raise Invalid(f"{name} must be an emoji or one of {', '.join(sorted(BUILTIN_ICONS))}", field=name)


async def active_gifts(db: asyncpg.Pool | asyncpg.Connection) -> list[asyncpg.Record]:
    """The gifts that can be given now, cheapest first (the REST list and the watch page)."""
    return list(await db.fetch(f"SELECT {_COLUMNS} FROM gifts WHERE active ORDER BY price_cents, name"))  # noqa: S608


@operation(summary="The active gift catalogue, cheapest first", roles=(),
           response="{gifts: [{id, name, priceCents, icon}]}", tags=("gifts",))
async def list_gifts(request: web.Request) -> web.Response:
    await require(request)
    return web.json_response({"gifts": [gift_json(r) for r in await active_gifts(request.app[DATABASE].pool)]})


@operation(summary="The whole gift catalogue, retired gifts included", roles=("admin",),
           response="{gifts: [{id, name, priceCents, icon, active}]}", tags=("gifts",))
async def admin_list_gifts(request: web.Request) -> web.Response:
    await require(request, "admin")
    rows = await request.app[DATABASE].pool.fetch(
        f"SELECT {_COLUMNS} FROM gifts ORDER BY active DESC, price_cents, name")  # noqa: S608
    return web.json_response({"gifts": [gift_json(r, admin=True) for r in rows]})


@operation(summary="Add a gift to the catalogue", roles=("admin",),
           request="{name, priceCents, icon (emoji or built-in SVG name), active?}", response="{gift}", status=201,
           tags=("gifts",))
async def admin_create_gift(request: web.Request) -> web.Response:
    user = await require(request, "admin")
    body = await v.read_json(request)
    name = v.text(body, "name", max_len=40)
    price = v.cents(body, "priceCents", low=1, high=MAX_PRICE_CENTS)
    chosen = icon(body)
    active = _boolean(body, "active", default=True)
    try:
        row = await request.app[DATABASE].pool.fetchrow(
            f"INSERT INTO gifts (name, price_cents, icon, active) VALUES ($1, $2, $3, $4)"  # noqa: S608
            f" RETURNING {_COLUMNS}", name, price, chosen, active)
    except asyncpg.UniqueViolationError:
        raise Conflict("a gift with this name exists", code="gift_name_taken", field="name") from None
    assert row is not None
    await audit.record(request.app[DATABASE].pool, admin_id=user.id, action="gift_created", target_kind="gift",
                       target_id=str(row["id"]), reason=_reason(body), details={"name": name, "priceCents": price})
    log.info("gift created", extra={"giftId": str(row["id"]), "userId": user.id, "priceCents": price})
    return web.json_response({"gift": gift_json(row, admin=True)}, status=201)


@operation(summary="Change a gift (sent gifts keep their price)", roles=("admin",),
           request="{name?, priceCents?, icon?, active?}", response="{gift}", tags=("gifts",))
async def admin_update_gift(request: web.Request) -> web.Response:
    """Change any of name, priceCents, icon, active. Gifts already sent keep the price they were sent at."""
    user = await require(request, "admin")
    gift_id = v.path_uuid(request, "giftId")
    body = await v.read_json(request)
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = v.text(body, "name", max_len=40)
    if "priceCents" in body:
        changes["price_cents"] = v.cents(body, "priceCents", low=1, high=MAX_PRICE_CENTS)
    if "icon" in body:
        changes["icon"] = icon(body)
    if "active" in body:
        changes["active"] = _boolean(body, "active", default=True)
    if not changes:
        raise Invalid("nothing to change: give name, priceCents, icon or active")
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(changes, start=2))
    try:
        row = await request.app[DATABASE].pool.fetchrow(
            f"UPDATE gifts SET {assignments}, updated_at = now() WHERE id = $1 RETURNING {_COLUMNS}",  # noqa: S608
            gift_id, *changes.values())
    except asyncpg.UniqueViolationError:
        raise Conflict("a gift with this name exists", code="gift_name_taken", field="name") from None
    if row is None:
        raise NotFound("no such gift", code="gift_not_found")
    await audit.record(request.app[DATABASE].pool, admin_id=user.id, action="gift_updated", target_kind="gift",
                       target_id=gift_id, reason=_reason(body),
                       details={k: v for k, v in changes.items() if k != "icon"})
    log.info("gift updated", extra={"giftId": gift_id, "userId": user.id, "fields": sorted(changes)})
    return web.json_response({"gift": gift_json(row, admin=True)})


def _reason(body: dict[str, Any]) -> str:
    """Why an operator changed the catalogue (optional here: a catalogue change explains itself)."""
    reason = body.get("reason")
    return reason.strip()[:500] if isinstance(reason, str) and len(reason.strip()) >= 3 else "catalogue change"


def _boolean(body: dict[str, Any], name: str, *, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise Invalid(f"{name} must be true or false", field=name)
    return value


def setup(app: web.Application) -> None:
    app.router.add_get("/api/gifts", list_gifts)
    app.router.add_get("/api/admin/gifts", admin_list_gifts)
    app.router.add_post("/api/admin/gifts", admin_create_gift)
    app.router.add_patch("/api/admin/gifts/{giftId}", admin_update_gift)
