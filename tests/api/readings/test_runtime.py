"""The runtime that bills: chat readings (connected = both signaling sockets joined) on a clock the test moves,
so minutes, grace and balance run out in milliseconds of real time, through the real app and database."""

from __future__ import annotations

import asyncpg
from aiohttp.test_utils import TestClient

from api.core.keys import REGISTRY
from api.readings.live import LIVE_READINGS
from billing import ledger
from billing.meter import net_cents
from config import Settings
from tests.reading_steps import (
    ManualClock,
    Party,
    Signal,
    accepted_session,
    deposit,
    join_and_start,
    reader_and_client,
    relogin,
    running_app,
    session_row,
    wait_for,
)

RATE = 120  # chat cents per minute in reader_and_client


def advance(http: TestClient, clock: ManualClock, seconds: float) -> None:
    clock.advance(seconds)
    http.app[LIVE_READINGS].wake()


async def started(http: TestClient, pool: asyncpg.Pool, **kw: int) -> tuple[str, Signal, Signal, ManualClock]:
    """A chat reading accepted and joined by both sides (so it is active), on a manual clock."""
    reader, client = await reader_and_client(http, pool, **kw)
    session_id = await accepted_session(http, reader, client)
    client_ws, reader_ws = await join_and_start(http, session_id, client, reader)
    await reader_ws.expect("start-session")
    return session_id, client_ws, reader_ws, http.app[LIVE_READINGS]._clock  # type: ignore[return-value]


async def test_reading_starts_when_both_join_and_charges_the_first_minute_at_once(
        settings: Settings, pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    async with running_app(settings, clock=clock) as http:
        session_id, client_ws, reader_ws, _ = await started(http, pool)
        row = await session_row(pool, session_id)
        assert row["status"] == "active" and row["started_at"] is not None
        state = await client_ws.expect("session-state", chargedCents=RATE)
        assert state["status"] == "active" and state["running"] is True
        assert state["balanceCents"] == 10_000 - RATE and "earnedCents" not in state
        # The reader never sees the client's balance; they see what they earned (70%), once the ledger has it.
        reader_state = await reader_ws.expect("session-state", earnedCents=RATE * 70 // 100)
        assert "balanceCents" not in reader_state and reader_state["chargedCents"] == RATE
        assert (await session_row(pool, session_id))["charged_cents"] == RATE


async def test_each_minute_is_charged_at_its_start_and_the_last_one_prorated_at_the_end(
        settings: Settings, pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    async with running_app(settings, clock=clock) as http:
        session_id, client_ws, reader_ws, _ = await started(http, pool)
        advance(http, clock, 60.5)
        state = await client_ws.expect("session-state", chargedCents=2 * RATE)
        assert state["billableSeconds"] == 60
        advance(http, clock, 9.5)  # 70 s billable in all
        await client_ws.expect("session-state", billableSeconds=70)
        await client_ws.send("end-session")
        end = await client_ws.expect("end-session")
        assert end["reason"] == "ended_by_client"
        assert end["session"]["chargedCents"] == net_cents(RATE, 70) == 140
        assert end["session"]["billableSeconds"] == 70
        await reader_ws.expect("end-session")
        row = await session_row(pool, session_id)
        assert row["status"] == "ended" and row["charged_cents"] == 140 and row["end_reason"] == "ended_by_client"
        assert await ledger.balance(pool, str(row["client_id"])) == 10_000 - 140
        assert await ledger.earnings(pool, str(row["reader_id"])) == 2 * (RATE * 70 // 100) - (100 * 70 // 100)
        # The same money shows in the billing metrics: two minutes charged, one prorated refund.
        registry = http.app[REGISTRY]
        assert registry.get_sample_value("soulseer_billing_minutes_charged_total") == 2
        assert registry.get_sample_value("soulseer_billing_charged_cents_total", {"kind": "reading_minute"}) == 2 * RATE
        assert registry.get_sample_value("soulseer_billing_meter_decisions_total", {"kind": "charge_minute"}) == 2


async def test_a_disconnect_pauses_the_meter_and_a_rejoin_within_grace_resumes_it(
        settings: Settings, pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    async with running_app(settings, clock=clock, grace_seconds=60) as http:
        session_id, client_ws, reader_ws, _ = await started(http, pool)
        client_party = Party({"id": str((await session_row(pool, session_id))["client_id"])}, {})
        advance(http, clock, 10)
        await reader_ws.expect("session-state", billableSeconds=10)
        await client_ws.close()
        paused = await reader_ws.expect("session-state", running=False)
        assert paused["connected"] == {"client": False, "reader": True}
        advance(http, clock, 45)  # away 45 s of a 60 s grace: not billed, not ended
        await reader_ws.expect("session-state", billableSeconds=10, running=False)
        client = await Signal.open(http, await relogin(pool, client_party))
        await client.join(session_id)
        resumed = await reader_ws.expect("session-state", running=True)
        assert resumed["billableSeconds"] == 10
        advance(http, clock, 5)
        await reader_ws.expect("session-state", billableSeconds=15)
        assert (await session_row(pool, session_id))["status"] == "active"


async def test_a_participant_away_past_grace_ends_the_reading(settings: Settings, pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    async with running_app(settings, clock=clock, grace_seconds=30) as http:
        session_id, client_ws, reader_ws, _ = await started(http, pool)
        advance(http, clock, 20)
        await reader_ws.expect("session-state", billableSeconds=20)
        await reader_ws.close()
        await client_ws.expect("session-state", running=False)
        advance(http, clock, 31)
        end = await client_ws.expect("end-session")
        assert end["reason"] == "grace_expired"
        assert end["session"]["chargedCents"] == net_cents(RATE, 20)
        row = await session_row(pool, session_id)
        assert row["status"] == "ended" and row["billable_seconds"] == 20
        assert await pool.fetchval("SELECT status FROM reader_availability WHERE reader_id = $1",
                                   row["reader_id"]) == "online"


async def test_the_client_is_warned_and_the_reading_ends_when_paid_time_runs_out(
        settings: Settings, pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    async with running_app(settings, clock=clock) as http:
        session_id, client_ws, reader_ws, _ = await started(http, pool, balance=2 * RATE)
        advance(http, clock, 60.5)  # minute 1 charged: the balance is empty, 59.5 s of paid time left
        warning = await client_ws.expect("notification", kind="low-balance")
        assert 55 <= warning["secondsLeft"] <= 60
        await client_ws.expect("session-state", chargedCents=2 * RATE)
        advance(http, clock, 60)
        end = await client_ws.expect("end-session")
        assert end["reason"] == "balance_exhausted"
        assert end["session"]["chargedCents"] == 2 * RATE and end["session"]["billableSeconds"] == 120
        row = await session_row(pool, session_id)
        assert await ledger.balance(pool, str(row["client_id"])) == 0
        # The reader saw the end, and never a balance.
        await reader_ws.expect("end-session")
        assert all("balanceCents" not in m for m in reader_ws.seen)


async def test_funds_added_mid_reading_reach_the_meter_and_keep_it_going(
        settings: Settings, pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    async with running_app(settings, clock=clock) as http:
        session_id, client_ws, _, _ = await started(http, pool, balance=RATE)
        await client_ws.expect("notification", kind="low-balance")
        row = await session_row(pool, session_id)
        await deposit(pool, str(row["client_id"]), 10 * RATE)  # as a Stripe webhook would, on another request
        advance(http, clock, 1)
        await client_ws.expect("session-state", balanceCents=10 * RATE)
        advance(http, clock, 60)
        state = await client_ws.expect("session-state", chargedCents=2 * RATE)
        assert state["status"] == "active" and state["balanceCents"] == 9 * RATE


async def test_an_accepted_reading_nobody_joins_ends_without_charge(settings: Settings, pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    async with running_app(settings, clock=clock, request_expiry_seconds=5, grace_seconds=5) as http:
        reader, client = await reader_and_client(http, pool)
        session_id = await accepted_session(http, reader, client)
        client_ws = await Signal.open(http, client)
        await client_ws.join(session_id)
        advance(http, clock, 11)
        end = await client_ws.expect("end-session")
        assert end["reason"] == "not_started" and end["session"]["chargedCents"] == 0
        assert await ledger.balance(pool, client.id) == 10_000
        assert await pool.fetchval("SELECT status FROM reader_availability WHERE reader_id = $1", reader.id) == "online"


async def test_session_state_is_pushed_every_tick_while_active(settings: Settings, pool: asyncpg.Pool) -> None:
    async with running_app(settings) as http:  # the real clock: one push per second
        _, client_ws, _, _ = await started(http, pool)
        # Each tick pushes the state with the billable time so far. Under load a tick can come late, so the
        # test asserts pushes keep coming and the time only grows, not that every second is seen.
        seen: list[int] = []
        while not seen or seen[-1] < 2:
            state = await client_ws.expect("session-state", timeout=5)
            assert state["status"] == "active" and len(seen) < 20, seen
            seen.append(state["billableSeconds"])
        assert seen == sorted(seen), seen


async def test_the_runtime_is_gone_once_the_reading_ends(settings: Settings, pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    async with running_app(settings, clock=clock) as http:
        session_id, client_ws, _, _ = await started(http, pool)
        live = http.app[LIVE_READINGS]
        assert live.get(session_id) is not None
        await client_ws.send("end-session")
        await client_ws.expect("end-session")

        async def gone() -> bool:
            return live.get(session_id) is None and len(live) == 0

        await wait_for(gone)
        await client_ws.send("chat-message", text="still there?")
        assert (await client_ws.expect("error"))["code"] in {"reading_closed", "not_joined"}
