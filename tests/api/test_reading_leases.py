"""One owner per reading: the lease in its row (owner node, fencing epoch, expiry on the database's clock),
on a real PostgreSQL. Racing acquirers get one lease; a live lease is never taken; renewals name what was lost;
a state change names the epoch, and one made without a runtime needs no live lease and moves the epoch on."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from api import reading_leases
from api.errors import Conflict
from api.reading_states import Actor, Event
from api.reading_store import apply
from billing.errors import LeaseLost
from tests.api.reading_steps import session_row
from tests.billing.people import make_pair


async def take_over(pool: asyncpg.Pool, session_id: str) -> None:
    """Another node takes the reading over, as its acquisition would (row locked FOR UPDATE, epoch + 1)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM rtc_sessions WHERE id = $1 FOR UPDATE", session_id)
        await conn.execute("UPDATE rtc_sessions SET lease_owner = $2, lease_epoch = lease_epoch + 1,"
                           " lease_expires_at = now() + interval '1 hour' WHERE id = $1", session_id, uuid.uuid4())


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
