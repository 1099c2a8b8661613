"""Booking pages: a reader's booking page (``/readers/{id}/book``: times in the client's zone, the price and the
cancellation policy before paying), the "Upcoming" list of both sides, and the reader's weekly hours."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from api.core.errors import NotFound
from api.core.keys import DATABASE, SETTINGS
from api.core.validation import path_uuid
from api.pages.rendering import page_auth, render
from api.readings import availability_store
from api.readings.availability_routes import availability_json, offers_for
from api.readings.upcoming import upcoming_json, upcoming_of
from billing import ledger


async def book_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "client")
    pool = request.app[DATABASE].pool
    try:
        reader_id: str | None = path_uuid(request, "reader_id")
    except NotFound:
        reader_id = None
    reader = None
    if reader_id is not None:
        reader = await pool.fetchrow("SELECT id, display_name FROM users WHERE id = $1 AND role = 'reader'",
                                     reader_id)
    if reader is None:
        return await render(request, "not_found.html", auth, script="layout", status=404)
    offers = await offers_for(request.app, str(reader["id"]), datetime.now(UTC))
    balance = await ledger.balance(pool, auth.user.id)
    reader_json = {"id": str(reader["id"]), "displayName": reader["display_name"]}
    return await render(request, "book.html", auth, script="book", reader=reader_json, offers=offers,
                        data={"reader": reader_json, "booking": offers, "balanceCents": balance})


async def upcoming_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "client", "reader")
    settings = request.app[SETTINGS]
    rows = await upcoming_of(request.app[DATABASE].pool, auth.user.id)
    items = [upcoming_json(settings, r, auth.user.id) for r in rows]
    return await render(request, "upcoming.html", auth, script="upcoming", items=items,
                        data={"upcoming": items, "now": datetime.now(UTC).isoformat()})


async def schedule_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "reader")
    pool = request.app[DATABASE].pool
    found = await availability_store.load(pool, auth.user.id)
    shown = availability_json(found, await availability_store.exception_rows(pool, auth.user.id))
    rates = await pool.fetchrow("SELECT flat_15_cents, flat_30_cents, flat_45_cents, flat_60_cents FROM reader_rates"
                                " WHERE reader_id = $1", auth.user.id)
    prices = {str(m): int(rates[f"flat_{m}_cents"]) if rates else 0 for m in (15, 30, 45, 60)}
    return await render(request, "schedule.html", auth, script="schedule", prices=prices,
                        data={"availability": shown, "prices": prices, "readerId": auth.user.id})


def setup(app: web.Application) -> None:
    app.router.add_get("/readers/{reader_id}/book", book_page)
    app.router.add_get("/upcoming", upcoming_page)
    app.router.add_get("/schedule", schedule_page)
