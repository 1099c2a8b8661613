"""Booking endpoints around a reader's availability: the reader sets weekly hours in their time zone and the
exceptions to them; anyone signed in sees the bookable times that follow, with their prices and the
cancellation policy (what a client is shown before paying). Booking itself is
``POST /api/webrtc/client/schedule-session`` (:func:`api.readings.scheduling.book`)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from api.accounts.auth import User, require
from api.cluster import CLUSTER
from api.cluster.limits import SharedUserAndAddressLimiter
from api.core import validation as v
from api.core.client_address import client_address
from api.core.errors import Invalid, NotFound, TooManyRequests
from api.core.keys import DATABASE, SETTINGS
from api.core.openapi import operation
from api.core.times import iso
from api.readings import availability, availability_store
from api.readings.availability import Availability, AvailabilityError, DateException, Hours
from billing import slots
from config import Settings

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

MAX_WEEKLY_HOURS = 50
WINDOW_SECONDS = 600.0
# Writes that shape or take bookings, per user (and four times that per address) in ten minutes.
BOOKING_WRITES = 30
BOOKING_LIMITER = web.AppKey("booking_limiter", SharedUserAndAddressLimiter)


async def limit(request: web.Request, user: User) -> None:
    """Rate limit one booking write of ``user`` (per account and per address)."""
    wait = await request.app[BOOKING_LIMITER].hit(user.id, client_address(request))
    if wait > 0:
        raise TooManyRequests("too many booking changes; wait a little", headers={"Retry-After": str(int(wait) + 1)})


def policy_json(settings: Settings) -> dict[str, Any]:
    """The cancellation policy as a client is shown it before paying."""
    hours, percent = settings.cancel_full_refund_hours, settings.late_cancel_refund_percent
    later = "nothing back" if percent == 0 else f"{percent}% back"
    return {"fullRefundHours": hours, "lateRefundPercent": percent,
            "text": f"Cancel at least {hours} hours before the start for a full refund; later, {later}."
                    " If the reader cancels or does not come, you get everything back."}


def availability_json(found: Availability | None, exceptions: list[dict[str, Any]]) -> dict[str, Any]:
    if found is None:
        return {"timeZone": None, "lengths": [30, 60], "noticeMinutes": 60, "horizonDays": 28, "weekly": [],
                "exceptions": exceptions}
    return {"timeZone": found.time_zone, "lengths": list(found.lengths),
            "noticeMinutes": int(found.notice.total_seconds() // 60), "horizonDays": found.horizon.days,
            "weekly": [{"weekday": h.weekday, "start": h.start, "end": h.end} for h in found.weekly],
            "exceptions": exceptions}


def _availability(body: dict[str, Any]) -> Availability:
    time_zone = v.text(body, "timeZone", max_len=64)
    lengths = body.get("lengths")
    if not isinstance(lengths, list) or not lengths or any(
            isinstance(m, bool) or m not in availability.LENGTHS for m in lengths):
        raise Invalid("lengths must be a list of 15, 30, 45 or 60", field="lengths")
    weekly_raw = body.get("weekly")
    if not isinstance(weekly_raw, list) or len(weekly_raw) > MAX_WEEKLY_HOURS:
        raise Invalid(f"weekly must be a list of at most {MAX_WEEKLY_HOURS} {{weekday, start, end}}", field="weekly")
    try:
        weekly = []
        for item in weekly_raw:
            if not isinstance(item, dict):
                raise AvailabilityError("each weekly entry is {weekday, start, end}")
            weekly.append(Hours(v.integer(item, "weekday"), v.integer(item, "start"), v.integer(item, "end")))
        return Availability(
            time_zone=time_zone, lengths=tuple(sorted(set(lengths))), weekly=tuple(weekly),
            notice=timedelta(minutes=v.integer(body, "noticeMinutes", low=0, high=10080)),
            horizon=timedelta(days=v.integer(body, "horizonDays", low=1, high=90)))
    except AvailabilityError as exc:
        field = "timeZone" if "time zone" in str(exc) else "weekly"
        raise Invalid(str(exc), field=field) from None
    except Invalid as exc:
        if exc.field in {"weekday", "start", "end"}:
            raise Invalid(f"weekly: {exc.message}", field="weekly") from None
        raise


@routes.get("/api/webrtc/reader/schedule")
@operation(summary="The reader's weekly hours, time zone, lengths and exceptions", roles=("reader",),
           response="{availability: {timeZone, lengths, noticeMinutes, horizonDays, weekly: [{weekday, start,"
                    " end}], exceptions: [{id, day, available, start, end}]}}", tags=("booking",))
async def my_schedule(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    pool = request.app[DATABASE].pool
    found = await availability_store.load(pool, user.id)
    return web.json_response({"availability": availability_json(
        found, await availability_store.exception_rows(pool, user.id))})


@routes.put("/api/webrtc/reader/schedule")
@operation(summary="Set the reader's weekly hours (local minutes since midnight, quarter hours; weekday 0 is"
                   " Monday) in their IANA time zone", roles=("reader",),
           request="{timeZone, lengths: [15|30|45|60], noticeMinutes, horizonDays, weekly: [{weekday, start, end}]}",
           response="{availability}", tags=("booking",))
async def set_schedule(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    await limit(request, user)
    found = _availability(await v.read_json(request))
    pool = request.app[DATABASE].pool
    async with pool.acquire() as conn:
        await availability_store.save(conn, user.id, found)
    log.info("availability set", extra={"userId": user.id, "timeZone": found.time_zone,
                                        "weeklyHours": len(found.weekly)})
    return web.json_response({"availability": availability_json(
        found, await availability_store.exception_rows(pool, user.id))})


@routes.post("/api/webrtc/reader/schedule/exceptions")
@operation(summary="Add an exception on one local date: time off (all day without start/end) or extra hours",
           roles=("reader",), request="{day: YYYY-MM-DD, available: bool, start?, end?}",
           response="{exception: {id, day, available, start, end}}", status=201, tags=("booking",))
async def add_exception(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    await limit(request, user)
    body = await v.read_json(request)
    day = availability_store.parse_day(body.get("day"))
    today = datetime.now(UTC).date()
    if day is None or not today - timedelta(days=1) <= day <= today + timedelta(days=366):
        raise Invalid("day must be a date (YYYY-MM-DD) from today to a year ahead", field="day")
    available = body.get("available")
    if not isinstance(available, bool):
        raise Invalid("available must be true (extra hours) or false (time off)", field="available")
    start = v.integer(body, "start") if body.get("start") is not None else None
    end = v.integer(body, "end") if body.get("end") is not None else None
    try:
        exception = DateException(day, available, start, end)
    except AvailabilityError as exc:
        raise Invalid(str(exc), field="start") from None
    exception_id = await availability_store.add_exception(request.app[DATABASE].pool, user.id, exception)
    return web.json_response({"exception": {"id": exception_id, "day": day.isoformat(), "available": available,
                                            "start": start, "end": end}}, status=201)


@routes.delete("/api/webrtc/reader/schedule/exceptions/{exceptionId}")
@operation(summary="Remove an exception", roles=("reader",), status=204, tags=("booking",))
async def delete_exception(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    await limit(request, user)
    if not await availability_store.delete_exception(request.app[DATABASE].pool, user.id,
                                                     v.path_uuid(request, "exceptionId")):
        raise NotFound("no such exception")
    return web.Response(status=204)


async def offers_for(app: web.Application, reader_id: str, now: datetime) -> dict[str, Any]:
    """What a client is shown before booking: every bookable start per length (UTC; the page shows them in the
    client's zone), the prices, the reader's zone and the cancellation policy."""
    pool = app[DATABASE].pool
    rates = await pool.fetchrow("SELECT flat_15_cents, flat_30_cents, flat_45_cents, flat_60_cents FROM reader_rates"
                                " WHERE reader_id = $1", reader_id)
    prices = {str(m): int(rates[f"flat_{m}_cents"]) if rates else 0 for m in availability.LENGTHS}
    found = await availability_store.load(pool, reader_id)
    starts: dict[str, set[datetime]] = {str(m): set() for m in availability.LENGTHS}
    if found is not None:
        taken = await availability_store.taken(pool, reader_id, now, now + found.horizon + timedelta(days=1))
        for minutes in found.lengths:
            starts[str(minutes)].update(availability.offers(found, minutes, now=now, taken=taken))
    for slot in await slots.list_slots(pool, reader_id, open_only=True, after=now):
        starts[str(slot.minutes)].add(slot.starts_at)
    return {
        "readerId": reader_id, "timeZone": found.time_zone if found is not None else None,
        "prices": prices,
        "offers": {m: [iso(s) for s in sorted(found_starts)] for m, found_starts in starts.items()
                   if found_starts and prices[m] > 0},
        "cancellation": policy_json(app[SETTINGS]),
        "earlyJoinMinutes": app[SETTINGS].schedule_early_join_seconds // 60,
    }


@routes.get("/api/webrtc/readers/{readerId}/offers")
@operation(summary="A reader's bookable times per length (UTC), prices, time zone and cancellation policy",
           roles=(), response="{readerId, timeZone, prices: {15, 30, 45, 60}, offers: {minutes: [startsAt]},"
                             " cancellation: {fullRefundHours, lateRefundPercent, text}, earlyJoinMinutes}",
           tags=("booking",))
async def reader_offers(request: web.Request) -> web.Response:
    await require(request)
    reader_id = v.path_uuid(request, "readerId")
    role = await request.app[DATABASE].pool.fetchval("SELECT role FROM users WHERE id = $1", reader_id)
    if role != "reader":
        raise NotFound("no such reader", code="unknown_reader")
    return web.json_response(await offers_for(request.app, reader_id, datetime.now(UTC)))


def setup(app: web.Application) -> None:
    app[BOOKING_LIMITER] = SharedUserAndAddressLimiter("booking-writes", BOOKING_WRITES, 4 * BOOKING_WRITES,
                                                       WINDOW_SECONDS, node=app.get(CLUSTER))
    app.router.add_routes(routes)
