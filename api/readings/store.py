"""Readings in PostgreSQL (``rtc_sessions``): the JSON shape clients see, and state changes as compare-and-set.

Every state change goes through :func:`apply`: the row is locked, the pure state machine
(:mod:`api.readings.states`) decides, and the new state is written in the caller's transaction. Two
requests racing (an accept and an expiry, two ends) therefore serialize on the row and the loser gets a
clear ``409`` instead of a half-applied change. A reading's runtime writes under its lease's epoch (see
:mod:`api.readings.leases`): a write from a runtime that lost it changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from api.core.errors import Conflict, Forbidden, NotFound
from api.core.times import iso
from api.readings.leases import fence_out
from api.readings.states import Actor, Event, IllegalTransition, Mode, State, initial_state, transition
from billing.errors import LeaseLost
from billing.statements import reading_totals

# The states a runtime (a lease holder) may own a reading in.
OPEN_WITH_OWNER = frozenset({State.ACCEPTED, State.ACTIVE})

# The columns every reading query returns, with the two participants' display names.
COLUMNS = """
    s.id, s.client_id, s.reader_id, s.session_type, s.mode, s.status, s.rate_cents, s.billable_seconds,
    s.charged_cents, s.refunded_cents, s.meter_minutes_charged, s.meter_billable_seconds, s.requested_at,
    s.accepted_at, s.started_at, s.ended_at, s.end_reason, s.expires_at, s.scheduled_start, s.scheduled_minutes,
    s.scheduled_start + make_interval(mins => s.scheduled_minutes) AS scheduled_end, s.meter_heartbeat_at,
    s.lease_owner, s.lease_epoch, coalesce(s.lease_expires_at > now(), false) AS lease_live, s.intro_minutes,
    c.display_name AS client_name, r.display_name AS reader_name
"""
FROM = "rtc_sessions s JOIN users c ON c.id = s.client_id JOIN users r ON r.id = s.reader_id"

# Which timestamp column records arriving in a state.
_STAMP = {
    State.ACCEPTED: "accepted_at",
    State.ACTIVE: "started_at",
    State.ENDED: "ended_at",
    State.DECLINED: "ended_at",
    State.CANCELLED: "ended_at",
    State.EXPIRED: "ended_at",
}


def session_json(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """The contract's ``session`` object (plus a few fields UIs need: names, times, schedule)."""
    body: dict[str, Any] = {
        "id": str(row["id"]),
        "clientId": str(row["client_id"]),
        "readerId": str(row["reader_id"]),
        "clientName": row["client_name"],
        "readerName": row["reader_name"],
        "sessionType": row["session_type"],
        "mode": row["mode"],
        "status": row["status"],
        "rateCents": row["rate_cents"],
        # While active, the meter's last persisted state (at most a second old); at the end, the billed total.
        "billableSeconds": (int(row["meter_billable_seconds"]) if row["status"] == State.ACTIVE
                            else row["billable_seconds"]),
        "chargedCents": row["charged_cents"],
        "minutesCharged": row["meter_minutes_charged"],
        "requestedAt": iso(row["requested_at"]),
        "acceptedAt": iso(row["accepted_at"]),
        "startedAt": iso(row["started_at"]),
        "endedAt": iso(row["ended_at"]),
        "endReason": row["end_reason"],
        "expiresAt": iso(row["expires_at"]) if row["status"] == State.REQUESTED else None,
        # The intro offer's free minutes at the start of this reading (0: none).
        "introMinutes": row.get("intro_minutes") or 0,
    }
    if row["mode"] == "scheduled":
        body["startsAt"] = iso(row["scheduled_start"])
        body["endsAt"] = iso(row["scheduled_end"])
        body["minutes"] = row["scheduled_minutes"]
    return body


async def money_for(db: asyncpg.Connection | asyncpg.Pool, session_id: str, actor: Actor) -> dict[str, int]:
    """The reading's money from the ledger, as one side may see it: ``{chargedCents}`` (net of refunds) for both,
    and ``earnedCents`` for the reader alone. Pages and the API show these, never the meter's running figures."""
    totals = await reading_totals(db, session_id)
    money = {"chargedCents": totals.charged_cents}
    if actor is Actor.READER:
        money["earnedCents"] = totals.earned_cents
    return money


async def fetch(db: asyncpg.Connection | asyncpg.Pool, session_id: str, *, lock: bool = False) -> asyncpg.Record:
    """The reading, or a 404; ``lock`` takes the row lock (inside a transaction) for a state change."""
    suffix = " FOR UPDATE OF s" if lock else ""
    row = await db.fetchrow(f"SELECT {COLUMNS} FROM {FROM} WHERE s.id = $1{suffix}", session_id)  # noqa: S608
    if row is None:
        raise NotFound("no such session", code="unknown_session")
    return row


def actor_of(row: asyncpg.Record | dict[str, Any], user_id: str) -> Actor:
    """Which side of the reading ``user_id`` is; anyone else gets the same 404 as for an unknown id."""
    if str(row["client_id"]) == user_id:
        return Actor.CLIENT
    if str(row["reader_id"]) == user_id:
        return Actor.READER
    # Not 403: a stranger must not learn that the id exists.
    raise NotFound("no such session", code="unknown_session")


async def fetch_for(db: asyncpg.Connection | asyncpg.Pool, session_id: str, user_id: str, *,
                    lock: bool = False) -> tuple[asyncpg.Record, Actor]:
    row = await fetch(db, session_id, lock=lock)
    return row, actor_of(row, user_id)


async def create(conn: asyncpg.Connection, *, client_id: str, reader_id: str, session_type: str, mode: Mode,
                 rate_cents: int, expires_in: float | None = None, scheduled_start: datetime | None = None,
                 scheduled_minutes: int | None = None) -> str:
    """Insert a new reading in the state its mode starts in (:func:`api.readings.states.initial_state`), with
    that state's time stamped; returns its id. A second open reading of the client or the reader raises
    ``asyncpg.UniqueViolationError`` (the partial unique indexes of migration 0003)."""
    state = initial_state(mode)
    stamp = f", {_STAMP[state]}" if state in _STAMP else ""
    stamp_value = ", now()" if state in _STAMP else ""
    return str(await conn.fetchval(
        "INSERT INTO rtc_sessions (client_id, reader_id, session_type, mode, status, rate_cents, expires_at,"  # noqa: S608
        f" scheduled_start, scheduled_minutes{stamp}) VALUES ($1, $2, $3, $4, $5, $6,"
        f" CASE WHEN $7::double precision IS NULL THEN NULL ELSE now() + make_interval(secs => $7) END, $8, $9"
        f"{stamp_value}) RETURNING id",
        client_id, reader_id, session_type, mode.value, state.value, rate_cents, expires_in, scheduled_start,
        scheduled_minutes))


async def apply(conn: asyncpg.Connection, session_id: str, event: Event, actor: Actor, *,
                reason: str | None = None, user_id: str | None = None, sets: dict[str, Any] | None = None,
                epoch: int | None = None) -> tuple[asyncpg.Record, asyncpg.Record]:
    """Lock, check with the state machine, write; returns (before, after). Must run inside a transaction.

    ``user_id`` (for a client or reader actor) must be that side of the reading; ``sets`` are extra
    columns written with the change (totals at the end, for example). ``epoch`` is the fencing token of
    the runtime that owns the reading: the row must still carry it (else :class:`LeaseLost`, nothing
    written). Without one, nobody may hold a live lease on the reading (``409 reading_busy``), and the
    change moves the epoch on, so that an owner whose lease lapsed can write nothing after it.
    """
    before = await fetch(conn, session_id, lock=True)
    if user_id is not None and actor_of(before, user_id) is not actor:
        raise Forbidden(f"only the {actor.value} of this reading can do that", code="not_allowed")
    if epoch is not None and (before["lease_epoch"] != epoch or before["status"] not in OPEN_WITH_OWNER):
        raise LeaseLost(f"reading {session_id} is {before['status']} under epoch {before['lease_epoch']},"
                        f" not open under {epoch}")
    try:
        after_state = transition(before["status"], event, actor, before["mode"])
    except IllegalTransition as exc:
        raise Conflict(exc.message, code=exc.code) from None
    if epoch is None and before["lease_live"]:
        raise Conflict("this reading is being run by a server right now; try again", code="reading_busy")
    if epoch is None and before["status"] in OPEN_WITH_OWNER:
        await fence_out(conn, session_id)
    columns = {"status": after_state.value, **(sets or {})}
    if after_state in _STAMP:
        columns.setdefault(_STAMP[after_state], datetime.now(UTC))
    if reason is not None:
        columns["end_reason"] = reason
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=2))
    await conn.execute(
        f"UPDATE rtc_sessions SET {assignments} WHERE id = $1",  # noqa: S608 (column names are ours)
        session_id, *columns.values(),
    )
    after = await fetch(conn, session_id)
    return before, after


async def history(db: asyncpg.Connection | asyncpg.Pool, user_id: str, *, limit: int = 50,
                  statuses: list[str] | None = None, before: datetime | None = None) -> list[asyncpg.Record]:
    """A user's readings (as client or reader), newest first."""
    return list(await db.fetch(
        f"SELECT {COLUMNS} FROM {FROM} WHERE (s.client_id = $1 OR s.reader_id = $1)"  # noqa: S608
        " AND ($2::text[] IS NULL OR s.status = ANY($2)) AND ($3::timestamptz IS NULL OR s.requested_at < $3)"
        " ORDER BY s.requested_at DESC LIMIT $4",
        user_id, statuses, before, limit,
    ))


async def set_reader_busy(conn: asyncpg.Connection, reader_id: str, busy: bool) -> None:
    """``busy`` while a reading holds the reader; afterwards back to what the reader chose."""
    if busy:
        await conn.execute("UPDATE reader_availability SET status = 'busy', updated_at = now() WHERE reader_id = $1",
                           reader_id)
    else:
        await conn.execute(
            "UPDATE reader_availability SET status = chosen_status, updated_at = now()"
            " WHERE reader_id = $1 AND NOT EXISTS (SELECT 1 FROM rtc_sessions WHERE reader_id = $1"
            " AND (status = 'active' OR (mode = 'per_minute' AND status = 'accepted')))",
            reader_id,
        )
