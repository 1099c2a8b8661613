"""One owner per reading: the lease in its row, through the real app and PostgreSQL. A charge stuck behind a
wallet lock keeps its lease; a runtime whose lease is taken stops at once and says nothing false; one that
cannot renew fences itself; a reading running here is never adopted; racing acquirers get one lease;
a state change names the epoch, and one made without a runtime needs no live lease and moves the epoch on."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from api.core.errors import Conflict
from api.readings import leases as reading_leases
from api.readings.live import LIVE_READINGS
from api.readings.states import Actor, Event
from api.readings.store import apply
from billing import ledger
from billing.errors import LeaseLost
from billing.meter import net_cents
from config import Settings
from tests.billing.invariants import assert_ledger_invariants
from tests.billing.people import make_pair
from tests.reading_steps import (
    ManualClock,
    Signal,
    accepted_session,
    join_and_start,
    reader_and_client,
    running_app,
    session_row,
    started_reading,
    wait_for,
)

RATE = 120  # chat cents per minute in reader_and_client


async def started(http: TestClient, pool: asyncpg.Pool) -> tuple[str, str, Signal, Signal]:
    """A chat reading accepted and joined by both sides; (session id, client id, client socket, reader socket)."""
    session_id, client, _reader, client_ws, reader_ws = await started_reading(http, pool)
    return session_id, client.id, client_ws, reader_ws


async def minute_charged(pool: asyncpg.Pool, session_id: str) -> None:
    """Minute 0 is in the ledger (the meter counts it, and says so, before the charge commits)."""

    async def charged() -> bool:
        return (await session_row(pool, session_id))["meter_minutes_charged"] == 1

    await wait_for(charged)


async def take_over(pool: asyncpg.Pool, session_id: str) -> None:
    """Another node takes the reading over, as its acquisition would (row locked FOR UPDATE, epoch + 1)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM rtc_sessions WHERE id = $1 FOR UPDATE", session_id)
        await conn.execute("UPDATE rtc_sessions SET lease_owner = $2, lease_epoch = lease_epoch + 1,"
                           " lease_expires_at = now() + interval '1 hour' WHERE id = $1", session_id, uuid.uuid4())


async def test_a_minute_charge_retried_behind_a_held_wallet_lock_keeps_its_one_owner(
        settings: Settings, pool: asyncpg.Pool, database_url: str) -> None:
    # The hardening issue's repro: the client's wallet row is locked from a second connection, and the
    # charge's backend, blocked on it, is terminated again and again for longer than the lease lasts. The
    # reading must stay this runtime's (never settled by recovery as server_restart while it runs), and
    # when the lock goes away its minutes are charged once, on the active reading.
    async with running_app(settings, reading_lease_seconds=3) as http:
        reader, client = await reader_and_client(http, pool)
        session_id = await accepted_session(http, reader, client)
        locker = await asyncpg.connect(database_url)
        await locker.execute("BEGIN")
        await locker.execute("SELECT 1 FROM client_balances WHERE client_id = $1 FOR UPDATE", client.id)
        locker_pid = await locker.fetchval("SELECT pg_backend_pid()")
        client_ws, reader_ws = await join_and_start(http, session_id, client, reader)

        async def terminate_blocked_charges() -> int:
            blocked = await pool.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> $1"
                " AND wait_event_type = 'Lock' AND query LIKE '%WITH lease AS%'", locker_pid)
            for backend in blocked:
                await pool.execute("SELECT pg_terminate_backend($1)", backend["pid"])
            return len(blocked)

        terminated = 0
        until = time.monotonic() + 12  # > 3 leases, and > 2 rounds of the old recovery (stale after 5 s)
        while time.monotonic() < until:
            terminated += await terminate_blocked_charges()
            assert (await session_row(pool, session_id))["status"] == "active"
            await asyncio.sleep(0.2)
        assert terminated >= 3
        # The wallet is released the moment the charge's last attempt is gone: whoever else waits for it
        # (the old recovery did) gets it before the runtime's next retry.
        terminated += await terminate_blocked_charges()
        await locker.execute("ROLLBACK")
        await locker.close()

        async def charged() -> bool:
            return (await session_row(pool, session_id))["charged_cents"] >= RATE

        await wait_for(charged, timeout=10)
        state = await reader_ws.expect("session-state", chargedCents=RATE)
        assert state["status"] == "active" and state["running"] is True
        row = await session_row(pool, session_id)
        assert (row["status"], row["meter_minutes_charged"], row["lease_epoch"]) == ("active", 1, 1)
        await client_ws.send("end-session")
        end = await client_ws.expect("end-session")
        assert end["reason"] == "ended_by_client"
        row = await session_row(pool, session_id)
        assert row["charged_cents"] == net_cents(RATE, row["billable_seconds"]) == end["session"]["chargedCents"]
        # Every movement of the reading happened while it was active: nothing charged on the ended row.
        late = await pool.fetchval("SELECT count(*) FROM ledger_transactions WHERE ref = $1 AND created_at > $2",
                                   session_id, row["ended_at"])
        assert late == 0
        assert await ledger.balance(pool, client.id) == 10_000 - row["charged_cents"]
        await assert_ledger_invariants(pool)


async def test_a_runtime_whose_lease_is_taken_over_stops_at_once_and_says_nothing_false(
        settings: Settings, pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    async with running_app(settings, clock=clock) as http:
        session_id, client_id, client_ws, reader_ws = await started(http, pool)
        await minute_charged(pool, session_id)
        live = http.app[LIVE_READINGS]
        runtime = live.get(session_id)
        assert runtime is not None
        await take_over(pool, session_id)
        moved = await client_ws.expect("error", code="reading_moved")  # within a renewal (one second)
        assert "another server" in moved["message"]
        await reader_ws.expect("error", code="reading_moved")
        await wait_for(lambda: _gone(live, session_id))
        clock.advance(120)  # two more minutes of the stale owner's meter: nothing charged, nothing pushed
        live.wake()
        await client_ws.send("chat-message", text="still there?")
        assert (await client_ws.expect("error"))["code"] == "reading_moved"
        assert not [m for m in client_ws.seen + reader_ws.seen if m["type"] == "end-session"]
        row = await session_row(pool, session_id)
        assert (row["status"], row["charged_cents"], row["meter_minutes_charged"]) == ("active", RATE, 1)
        assert await ledger.balance(pool, client_id) == 10_000 - RATE
        await assert_ledger_invariants(pool)


async def _gone(live: object, session_id: str) -> bool:
    return live.get(session_id) is None  # type: ignore[attr-defined]


async def test_a_runtime_that_cannot_renew_fences_itself_until_it_can(settings: Settings, pool: asyncpg.Pool) -> None:
    clock, lease_clock = ManualClock(), ManualClock()
    async with running_app(settings, clock=clock, lease_clock=lease_clock, reading_lease_seconds=10) as http:
        session_id, _, client_ws, _ = await started(http, pool)
        await minute_charged(pool, session_id)
        live = http.app[LIVE_READINGS]
        await live.renewal.stop()  # the keeper cannot reach the database any more
        lease_clock.advance(11)  # the lease ran out by the runtime's own clock
        clock.advance(61)  # and the meter would charge minute 1 now
        live.wake()
        await asyncio.sleep(0.5)  # nothing must happen; a bounded wait is the only way to see nothing
        client_ws.seen.clear()
        clock.advance(1)
        live.wake()
        await asyncio.sleep(0.5)
        assert [m for m in client_ws.seen if m["type"] == "session-state"] == []
        assert (await session_row(pool, session_id))["meter_minutes_charged"] == 1
        await live.renew()  # the database is back and nobody took the reading: it carries on
        clock.advance(1)
        live.wake()
        state = await client_ws.expect("session-state", chargedCents=2 * RATE)
        assert state["status"] == "active"
        await assert_ledger_invariants(pool)


async def test_a_reading_running_here_is_never_adopted_even_when_its_lease_lapsed(
        settings: Settings, pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    async with running_app(settings, clock=clock) as http:
        session_id, *_ = await started(http, pool)
        live = http.app[LIVE_READINGS]
        runtime = live.get(session_id)
        await pool.execute("UPDATE rtc_sessions SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
                           session_id)
        assert await live.adopt() == []
        assert live.get(session_id) is runtime
        assert (await session_row(pool, session_id))["lease_epoch"] == 1
        await live.renew()  # its keeper renews it under the same epoch
        row = await session_row(pool, session_id)
        assert row["lease_epoch"] == 1 and row["lease_owner"] is not None
        assert await pool.fetchval("SELECT lease_expires_at > now() FROM rtc_sessions WHERE id = $1", session_id)


async def _open_reading(pool: asyncpg.Pool, status: str = "active") -> str:
    client, reader = await make_pair(pool)
    return str(await pool.fetchval(
        "INSERT INTO rtc_sessions (client_id, reader_id, session_type, status, rate_cents, started_at)"
        " VALUES ($1, $2, 'chat', $3, 60, now()) RETURNING id", client, reader, status))


async def test_of_many_nodes_racing_for_a_free_lease_exactly_one_gets_it(pool: asyncpg.Pool) -> None:
    session_id = await _open_reading(pool)
    owners = [str(uuid.uuid4()) for _ in range(8)]
    leases = await asyncio.gather(*(reading_leases.acquire(pool, session_id, o, 15) for o in owners))
    won = [lease for lease in leases if lease is not None]
    assert len(won) == 1 and won[0].epoch == 1 and won[0].taken_from is None
    row = await session_row(pool, session_id)
    assert (str(row["lease_owner"]), row["lease_epoch"]) == (won[0].owner, 1)


async def test_a_live_lease_is_never_taken_and_a_lapsed_one_is_taken_under_the_next_epoch(pool: asyncpg.Pool) -> None:
    session_id = await _open_reading(pool)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    held = await reading_leases.acquire(pool, session_id, first, 15)
    assert held is not None
    assert await reading_leases.acquire(pool, session_id, second, 15) is None
    assert await reading_leases.acquire(pool, session_id, first, 15) is None  # not even by its own node
    assert await reading_leases.release(pool, held)
    taken = await reading_leases.acquire(pool, session_id, second, 15)
    assert taken is not None and (taken.epoch, taken.taken_from) == (2, first)
    await pool.execute("UPDATE rtc_sessions SET status = 'ended' WHERE id = $1", session_id)
    await pool.execute("UPDATE rtc_sessions SET lease_expires_at = now() WHERE id = $1", session_id)
    assert await reading_leases.acquire(pool, session_id, first, 15) is None  # a closed reading has no owner


async def test_renewal_extends_the_leases_still_held_and_names_the_lost_ones(pool: asyncpg.Pool) -> None:
    node = str(uuid.uuid4())
    kept, taken, ended = [await _open_reading(pool) for _ in range(3)]
    leases = {sid: await reading_leases.acquire(pool, sid, node, 2) for sid in (kept, taken, ended)}
    await take_over(pool, taken)
    await pool.execute("UPDATE rtc_sessions SET status = 'ended' WHERE id = $1", ended)
    held = {sid: lease.epoch for sid, lease in leases.items() if lease is not None}
    renewed, lost = await reading_leases.renew(pool, node, held, 60)
    assert renewed == {kept} and lost == {taken, ended}
    assert await pool.fetchval("SELECT lease_expires_at > now() + interval '30 seconds' FROM rtc_sessions"
                               " WHERE id = $1", kept)


async def test_a_state_change_names_the_epoch_and_one_without_needs_no_live_lease(pool: asyncpg.Pool) -> None:
    session_id = await _open_reading(pool)
    lease = await reading_leases.acquire(pool, session_id, str(uuid.uuid4()), 15)
    assert lease is not None
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(LeaseLost):
            await apply(conn, session_id, Event.END, Actor.SYSTEM, reason="x", epoch=lease.epoch + 1)
        with pytest.raises(Conflict) as busy:
            await apply(conn, session_id, Event.END, Actor.CLIENT, reason="ended_by_client")
    assert busy.value.code == "reading_busy"
    assert (await session_row(pool, session_id))["status"] == "active"
    await reading_leases.release(pool, lease)
    async with pool.acquire() as conn, conn.transaction():
        _, after = await apply(conn, session_id, Event.END, Actor.CLIENT, reason="ended_by_client")
    assert after["status"] == "ended" and after["lease_epoch"] == lease.epoch + 1  # the old owner is fenced out
