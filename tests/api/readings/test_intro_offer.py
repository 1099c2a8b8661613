"""The intro offer: the first N minutes free with each of a client's first K readers, paid to the reader at their
share by the promotion account; the rule and the meter as properties, the money through the real runtime (chat
readings on a manual clock), the grant once per client and reader in the database."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from api.readings.live import LIVE_READINGS
from billing import intro_offer, ledger
from billing.meter import ChargeMinute, Meter, Refund
from billing.split import split
from config import Settings
from tests.billing.invariants import assert_ledger_invariants
from tests.reading_steps import (
    ManualClock,
    accepted_session,
    join_and_start,
    reader_and_client,
    request_session,
    running_app,
    session_row,
)

RATE = 120
READER_SHARE = split(RATE)[0]


@settings(max_examples=300, deadline=None)
@given(st.sets(st.sampled_from("abcdefgh")), st.sampled_from("abcdefghij"), st.integers(0, 5), st.integers(0, 5))
def test_the_offer_is_for_new_readers_among_the_first_k(previous: set[str], reader: str, minutes: int,
                                                        readers: int) -> None:
    granted = intro_offer.free_minutes(reader_id=reader, previous_readers=previous, minutes=minutes,
                                       readers=readers)
    eligible = reader not in previous and len(previous) < readers and minutes > 0
    assert granted == (minutes if eligible else 0)


@settings(max_examples=300, deadline=None)
@given(free=st.integers(0, 5), balance=st.integers(0, 1000), rate=st.integers(1, 300),
       seconds=st.floats(0.5, 900), stops=st.lists(st.floats(1, 899), max_size=4))
def test_free_minutes_cost_the_client_nothing_and_need_no_balance(free: int, balance: int, rate: int, seconds: float,
                                                                  stops: list[float]) -> None:
    meter = Meter(rate_cents=rate, balance_cents=balance, free_minutes=free, grace_seconds=10_000)
    decisions = meter.connected("client", 0) + meter.connected("reader", 0)
    for at in sorted(stops):
        if at < seconds:
            decisions += meter.tick(at)
    decisions += meter.finish(seconds, "ended_by_client")
    charges = [d for d in decisions if isinstance(d, ChargeMinute)]
    assert [c.index for c in charges] == list(range(len(charges)))
    assert [c.free for c in charges] == [c.index < free for c in charges]
    paid = [c for c in charges if not c.free]
    assert sum(c.cents for c in paid) <= balance  # the free minutes never touched the balance
    refunds = [d for d in decisions if isinstance(d, Refund)]
    assert (len(refunds) == 1) == bool(paid) and (not refunds or refunds[0].minute_index == charges[-1].index)
    # What the client pays is the paid minutes less the refund; the free ones are covered up to ``free``.
    assert meter.charged_cents == sum(c.cents for c in paid) - sum(r.cents for r in refunds)
    assert meter.billable_seconds(seconds) <= (free + balance // rate) * 60 + 1e-9


def advance(http: TestClient, clock: ManualClock, seconds: float) -> None:
    clock.advance(seconds)
    http.app[LIVE_READINGS].wake()


async def test_the_first_minutes_are_free_and_the_reader_is_paid_by_the_promotion_account(
        settings: Settings, pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    async with running_app(settings, clock=clock, intro_free_minutes=3, intro_readers=3) as http:
        reader, client = await reader_and_client(http, pool)
        offer = await (await http.get("/api/webrtc/client/intro-offer", headers=client.headers)).json()
        assert offer == {"freeMinutes": 3, "readers": 3, "readersLeft": 3, "usedReaderIds": []}
        session_id = await accepted_session(http, reader, client)
        assert (await session_row(pool, session_id))["intro_minutes"] == 3
        client_ws, reader_ws = await join_and_start(http, session_id, client, reader)
        state = await client_ws.expect("session-state", running=True)
        assert state["chargedCents"] == 0 and state["balanceCents"] == 10_000
        await reader_ws.expect("session-state", earnedCents=READER_SHARE)
        advance(http, clock, 150)  # minutes 2 and 3: still free
        await reader_ws.expect("session-state", earnedCents=3 * READER_SHARE)
        advance(http, clock, 40)  # 190 s: minute 4 is the first paid one
        await client_ws.expect("session-state", chargedCents=RATE)
        advance(http, clock, 10)  # 200 s in all
        await client_ws.expect("session-state", billableSeconds=200)
        await client_ws.send("end-session")
        end = await client_ws.expect("end-session")
        # 200 s: three free minutes, then 20 s of the fourth, rounded up to the cent.
        assert end["session"]["chargedCents"] == -(-RATE * 20 // 60) == 40
        assert end["session"]["introMinutes"] == 3
        assert await ledger.balance(pool, client.id) == 10_000 - 40
        assert await ledger.earnings(pool, reader.id) == 3 * READER_SHARE + READER_SHARE - split(RATE - 40)[0]
        kinds = await pool.fetch("SELECT kind, amount_cents FROM ledger_transactions WHERE ref = $1 ORDER BY key",
                                 session_id)
        assert [k["kind"] for k in kinds].count("intro_minute") == 3
        promotion = await pool.fetchval("SELECT balance_cents FROM ledger_accounts WHERE account = 'promotion'")
        assert promotion == -3 * READER_SHARE
        await assert_ledger_invariants(pool)

        # A second reading with the same reader: no offer, the first minute is charged at once.
        second = await accepted_session(http, reader, client)
        assert (await session_row(pool, second))["intro_minutes"] == 0
        offer = await (await http.get("/api/webrtc/client/intro-offer", headers=client.headers)).json()
        assert offer["readersLeft"] == 2 and offer["usedReaderIds"] == [reader.id]


async def test_once_per_client_and_reader_in_the_database(settings: Settings, pool: asyncpg.Pool) -> None:
    async with running_app(settings, intro_free_minutes=3) as http:
        reader, client = await reader_and_client(http, pool)
        session_id = await accepted_session(http, reader, client)
        with pytest.raises(asyncpg.UniqueViolationError):
            await pool.execute("INSERT INTO intro_offers (client_id, reader_id, session_id, minutes)"
                               " VALUES ($1, $2, $3, 3)", client.id, reader.id, session_id)


async def test_a_request_that_never_starts_hands_the_offer_back(settings: Settings, pool: asyncpg.Pool) -> None:
    async with running_app(settings, intro_free_minutes=3) as http:
        reader, client = await reader_and_client(http, pool)
        first = (await request_session(http, client, reader))["session"]
        assert first["introMinutes"] == 3
        resp = await http.post(f"/api/webrtc/client/cancel-session/{first['id']}", headers=client.headers)
        assert resp.status == 200
        assert await pool.fetchval("SELECT count(*) FROM intro_offers") == 0
        again = (await request_session(http, client, reader))["session"]
        assert again["introMinutes"] == 3


async def test_only_the_first_k_readers_get_it(settings: Settings, pool: asyncpg.Pool) -> None:
    async with running_app(settings, intro_free_minutes=2, intro_readers=2) as http:
        granted = []
        reader, client = await reader_and_client(http, pool)
        for n in range(3):
            if n:
                reader, _ = await reader_and_client(http, pool, balance=0)
            session = (await request_session(http, client, reader))["session"]
            granted.append(session["introMinutes"])
            resp = await http.post(f"/api/webrtc/reader/decline-session/{session['id']}", headers=reader.headers)
            assert resp.status == 200
            # Declined: handed back. Mark the reader as had (a started reading) for the next round.
            await pool.execute("UPDATE rtc_sessions SET started_at = now() WHERE id = $1", session["id"])
        assert granted == [2, 2, 0]
