"""A reader's public profile: what the page ``/readers/{id}`` shows and ``GET /api/readers/{readerId}`` returns.

Their card (rates, bio, specialties, languages, photo, rating), their flat prices and message price, the next
open slots from the reader's published ones (:mod:`billing.slots`), the latest reviews, and, for a signed-in
client, whether they favourited the reader or asked to be notified once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from api.accounts.auth import User, require
from api.core.errors import NotFound
from api.core.keys import DATABASE
from api.core.openapi import operation
from api.core.times import iso
from api.core.validation import path_uuid
from api.marketplace import favourites, reviews, search
from billing import slots

NEXT_SLOTS = 6


async def load(db: asyncpg.Pool, reader_id: str, viewer: User | None) -> dict[str, Any] | None:
    """The profile, or None when there is no such reader (or they are suspended)."""
    row = await search.one_card(db, reader_id)
    if row is None:
        return None
    profile = search.card(row)
    open_slots = await slots.list_slots(db, reader_id, open_only=True, after=datetime.now(UTC), limit=NEXT_SLOTS * 4)
    profile["nextSlots"] = [{"id": s.id, "startsAt": iso(s.starts_at), "minutes": s.minutes,
                             "priceCents": s.price_cents} for s in open_slots if s.price_cents][:NEXT_SLOTS]
    profile["reviews"] = await reviews.page_of(db, reader_id)
    profile["memberSince"] = iso(row["created_at"])
    profile["interest"] = (await favourites.interest_of(db, viewer.id, reader_id)
                           if viewer is not None and viewer.role == "client" else None)
    return profile


@operation(summary="A reader's public profile: card, prices, next open slots, latest reviews", roles=(),
           response="{reader: {id, displayName, status, bio, specialties, languages, rates, photoUrl, rating, "
           "reviewCount, nextSlots: [{id, startsAt, minutes, priceCents}], reviews, memberSince, "
           "interest: {favourite, watching} | null}}", tags=("readers",))
async def get_profile(request: web.Request) -> web.Response:
    user = await require(request)
    found = await load(request.app[DATABASE].pool, path_uuid(request, "readerId"), user)
    if found is None:
        raise NotFound("no such reader", code="reader_not_found")
    return web.json_response({"reader": found})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/readers/{readerId}", get_profile)
