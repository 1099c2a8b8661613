"""A reader's public profile: what the page ``/readers/{id}`` shows and ``GET /api/readers/{readerId}`` returns.

Their card (rates, bio, specialties, languages, photo, rating), their flat prices and message price, the next
open slots from the reader's published ones (:mod:`billing.slots`), the latest reviews, and, for a signed-in
client, whether they favourited the reader or asked to be notified once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from api.accounts.auth import User, require
from api.core.errors import NotFound
from api.core.keys import DATABASE
from api.core.openapi import operation
from api.core.times import iso
from api.core.validation import path_uuid
from api.marketplace import favourites, reviews, search
from api.readings.availability_routes import offers_for

NEXT_SLOTS = 6


async def load(app: web.Application, reader_id: str, viewer: User | None) -> dict[str, Any] | None:
    """The profile, or None when there is no such reader (or they are suspended)."""
    db = app[DATABASE].pool
    row = await search.one_card(db, reader_id)
    if row is None:
        return None
    profile = search.card(row)
    profile["nextSlots"] = next_times(await offers_for(app, reader_id, datetime.now(UTC)))
    profile["reviews"] = await reviews.page_of(db, reader_id)
    profile["memberSince"] = iso(row["created_at"])
    profile["interest"] = (await favourites.interest_of(db, viewer.id, reader_id)
                           if viewer is not None and viewer.role == "client" else None)
    return profile


def next_times(offers: dict[str, Any]) -> list[dict[str, Any]]:
    """The soonest bookable starts, from the same offers the booking page shows (weekly hours and published
    slots alike), each with its shortest offered length and that length's price."""
    shortest: dict[str, int] = {}
    for minutes, starts in offers["offers"].items():
        for start in starts:
            shortest[start] = min(shortest.get(start, int(minutes)), int(minutes))
    return [{"startsAt": start, "minutes": minutes, "priceCents": offers["prices"][str(minutes)]}
            for start, minutes in sorted(shortest.items())[:NEXT_SLOTS]]


@operation(summary="A reader's public profile: card, prices, next open slots, latest reviews", roles=(),
           response="{reader: {id, displayName, status, bio, specialties, languages, rates, photoUrl, rating, "
           "reviewCount, nextSlots: [{startsAt, minutes, priceCents}], reviews, memberSince, "
           "interest: {favourite, watching} | null}}", tags=("readers",))
async def get_profile(request: web.Request) -> web.Response:
    user = await require(request)
    found = await load(request.app, path_uuid(request, "readerId"), user)
    if found is None:
        raise NotFound("no such reader", code="reader_not_found")
    return web.json_response({"reader": found})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/readers/{readerId}", get_profile)
