"""Reader slots for scheduled readings: readers publish, list and withdraw them; clients list a reader's
open slots and book one (the reading is created and paid in one transaction)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from api.accounts.auth import require
from api.core.errors import Invalid
from api.core.keys import BILLING_METRICS, DATABASE, SETTINGS
from api.core.mail import MAIL
from api.core.openapi import operation
from api.core.times import iso
from api.core.validation import cents, choice, integer, path_uuid, read_json, text
from api.readings import booking, receipts, scheduling
from api.readings.store import fetch, session_json
from api.realtime import notifications
from billing import slots
from billing.slots import Slot

# How far ahead a reader may open time, and the least notice a slot needs.
routes = web.RouteTableDef()
HORIZON = timedelta(days=90)
MIN_NOTICE = timedelta(minutes=5)


def slot_json(slot: Slot, *, for_reader: bool) -> dict[str, Any]:
    shown: dict[str, Any] = {"id": slot.id, "readerId": slot.reader_id, "startsAt": iso(slot.starts_at),
                             "minutes": slot.minutes, "priceCents": slot.price_cents or None}
    if for_reader:
        shown.update(booked=slot.booked, sessionId=slot.session_id)
    return shown


def _starts_at(body: dict[str, Any]) -> datetime:
    raw = text(body, "startsAt", max_len=40)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise Invalid("startsAt must be an ISO-8601 time", field="startsAt") from None
    if moment.tzinfo is None:
        raise Invalid("startsAt needs a time zone (e.g. 2030-01-01T10:00:00Z)", field="startsAt")
    now = datetime.now(UTC)
    if not now + MIN_NOTICE <= moment <= now + HORIZON:
        raise Invalid("startsAt must be between 5 minutes and 90 days from now", field="startsAt")
    return moment


@routes.get("/api/webrtc/reader/slots")
@operation(summary="The reader's own slots from now on", roles=("reader",),
           response="{slots: [{id, readerId, startsAt, minutes, priceCents, booked, sessionId}]}", tags=("slots",))
async def my_slots(request: web.Request) -> web.Response:
    """The reader's own slots from now on, booked or not."""
    user = await require(request, "reader")
    found = await slots.list_slots(request.app[DATABASE].pool, user.id, open_only=False,
                                   after=datetime.now(UTC))
    return web.json_response({"slots": [slot_json(s, for_reader=True) for s in found]})


@routes.post("/api/webrtc/reader/slots")
@operation(summary="Open a slot for scheduled readings", roles=("reader",), request="{startsAt, minutes}",
           response="{slot}", status=201, tags=("slots",))
async def publish(request: web.Request) -> web.Response:
    """``{startsAt, minutes: 15|30|45|60}`` -> 201 ``{slot}``; 409 ``slot_taken`` if it overlaps another."""
    user = await require(request, "reader")
    body = await read_json(request)
    starts_at = _starts_at(body)
    minutes = integer(body, "minutes", options=slots.LENGTHS)
    slot = await slots.publish_slot(request.app[DATABASE].pool, reader_id=user.id, starts_at=starts_at,
                                    minutes=minutes)
    return web.json_response({"slot": slot_json(slot, for_reader=True)}, status=201)


@routes.delete("/api/webrtc/reader/slots/{slotId}")
@operation(summary="Withdraw an open slot", roles=("reader",), status=204, tags=("slots",))
async def withdraw(request: web.Request) -> web.Response:
    """Delete an open slot (404 if not the reader's, 409 if booked)."""
    user = await require(request, "reader")
    await slots.delete_slot(request.app[DATABASE].pool, reader_id=user.id, slot_id=path_uuid(request, "slotId"))
    return web.Response(status=204)


@routes.get("/api/webrtc/readers/{readerId}/slots")
@operation(summary="A reader's open slots with their flat price", roles=("client", "admin"),
           response="{slots: [{id, readerId, startsAt, minutes, priceCents}]}", tags=("slots",))
async def open_slots(request: web.Request) -> web.Response:
    """A reader's open slots from now on, with their flat price (client's view: no booking details)."""
    await require(request, "client", "admin")
    reader_id = path_uuid(request, "readerId")
    found = await slots.list_slots(request.app[DATABASE].pool, reader_id, open_only=True, after=datetime.now(UTC))
    return web.json_response({"slots": [slot_json(s, for_reader=False) for s in found if s.price_cents]})


@routes.post("/api/webrtc/client/slots/{slotId}/book")
@operation(summary="Book a slot: the scheduled reading is created and paid now", roles=("client",),
           request="{sessionType, expectedCents (the slot's priceCents shown)}",
           response="{session}; 409 price_changed (error.priceCents: the price now)", status=201, tags=("slots",))
async def book(request: web.Request) -> web.Response:
    """``{sessionType, expectedCents}`` -> 201 ``{session}``: the slot's reading, paid now at the reader's flat
    rate, which must be the price the client was shown."""
    user = await require(request, "client")
    slot_id = path_uuid(request, "slotId")
    body = await read_json(request)
    session_type = choice(body, "sessionType", booking.SESSION_TYPES)
    expected = cents(body, "expectedCents")
    assert expected is not None
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        session, txn = await booking.book_slot(conn, slot_id=slot_id, client_id=user.id, session_type=session_type,
                                               expected_cents=expected)
        # One session shape everywhere: the readings' own, read back with its names and meter fields.
        row = await fetch(conn, str(session["id"]))
        stored = await scheduling.booked(conn, row)
        await receipts.booked(conn, row, request.app[SETTINGS].public_url)
    request.app[BILLING_METRICS].recorded(txn)
    request.app[MAIL].wake()
    notifications.deliver(request.app, stored)
    return web.json_response({"session": session_json(row)}, status=201)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
