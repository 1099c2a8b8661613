"""Crash safety with real processes: a ``soulseer serve`` is killed (SIGKILL) or stopped (SIGTERM) in the middle
of a reading; the next process adopts the reading once its lease has lapsed. If its parties re-join it goes on
(the outage unbilled, no minute charged twice); if they do not, it ends and is settled exactly once by its
rules (per minute: paid minutes stand and the unused part of the last one comes back; scheduled: refunded
for what was not given)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from api.readings import booking
from billing import ledger, slots
from billing.meter import net_cents, prorated_refund
from billing.scheduled_policy import Booking, not_given_refund
from tests.api.cluster import processes
from tests.api.readings.test_media import connect_media
from tests.billing.invariants import assert_ledger_invariants
from tests.reading_steps import Party, Signal, at_least, deposit, quick_user, session_row, video_reading, wait_for

pytestmark = pytest.mark.slow
RATE = 600  # 10 cents a second, so a few seconds make a visible refund
LEASE_SECONDS = 3
PRICE = 1000  # a scheduled reading's flat price (15 or 30 minutes)


@asynccontextmanager
async def serving(database_url: str, port: int, log: Path, grace: int = 60) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A ``soulseer serve`` on ``port``, ready (its start-up adoption done); stopped with SIGTERM at the end if it
    still runs."""
    env = {**os.environ, "DATABASE_URL": database_url, "SOULSEER_PORT": str(port), "SOULSEER_LOG_JSON": "false",
           "SOULSEER_GRACE_SECONDS": str(grace), "SOULSEER_SECRET_KEY": "crash-test-secret-key",
           "SOULSEER_READING_LEASE_SECONDS": str(LEASE_SECONDS), "SOULSEER_INTRO_FREE_MINUTES": "0"}
    with processes.serve(env, log, stop_timeout=15) as process:
        await processes.ready(f"http://127.0.0.1:{port}")
        yield process


async def _join(http: aiohttp.ClientSession, session_id: str, parties: dict[str, Party]) -> dict[str, Signal]:
    sockets: dict[str, Signal] = {}
    for role, party in parties.items():
        sockets[role] = Signal(await http.ws_connect("/ws", headers=party.headers))
        await sockets[role].join(session_id)
    return sockets


def _kill(process: subprocess.Popen[bytes], how: signal.Signals) -> None:
    process.send_signal(how)  # SIGKILL: no clean-up at all; SIGTERM: the process hands its readings over
    process.wait(20)


def _server_place(tmp_path: Path) -> tuple[int, str, Path]:
    """A free port for a ``soulseer serve``, its base URL, and where its log goes."""
    port = processes.free_port()
    return port, f"http://127.0.0.1:{port}", tmp_path / "serve.log"


async def _parties(pool: asyncpg.Pool) -> tuple[Party, Party]:
    """A reader, and a client with $50.00."""
    reader = await quick_user(pool, "reader")
    client = await quick_user(pool, "client")
    await deposit(pool, client.id, 5_000)
    return reader, client


async def _started_video_reading(http: aiohttp.ClientSession, reader: Party, client: Party,
                                 peers: list[Any]) -> tuple[str, dict[str, Signal]]:
    """A video reading both parties joined with media (their peers kept in ``peers``), started."""
    session_id = await video_reading(http, reader, client, RATE)
    sockets = await _join(http, session_id, {"client": client, "reader": reader})
    for role in ("client", "reader"):
        peers.append(await connect_media(sockets[role], role))
    await sockets["client"].expect("start-session", timeout=20)
    return session_id, sockets


async def test_a_reading_interrupted_by_kill_9_whose_parties_never_return_is_settled_exactly_once(
        database_url: str, pool: asyncpg.Pool, tmp_path: Path) -> None:
    port, base, log = _server_place(tmp_path)
    reader, client = await _parties(pool)
    peers = []
    async with serving(database_url, port, log) as first:
        async with aiohttp.ClientSession(base_url=base) as http:
            session_id, _sockets = await _started_video_reading(http, reader, client, peers)

            async def heartbeats_written() -> bool:
                row = await session_row(pool, session_id)
                return row["meter_minutes_charged"] == 1 and row["meter_billable_seconds"] >= 3

            await wait_for(heartbeats_written, timeout=20, interval=0.1)
            _kill(first, signal.SIGKILL)
        for peer in peers:
            await peer.close()
    crashed = await session_row(pool, session_id)
    assert crashed["status"] == "active" and crashed["charged_cents"] == RATE
    seconds = crashed["meter_billable_seconds"]

    async with serving(database_url, port, log, grace=5):
        async def settled() -> bool:
            return (await session_row(pool, session_id))["status"] == "ended"

        await wait_for(settled, timeout=30, interval=0.2)
    row = await session_row(pool, session_id)
    assert row["end_reason"] == "server_restart" and row["ended_at"] is not None
    assert row["lease_epoch"] == 2  # the second process owned it, under the next epoch
    # Paid minutes stand; the unused part of the last one is refunded as of the last heartbeat.
    assert row["charged_cents"] == net_cents(RATE, seconds) == RATE - prorated_refund(RATE, seconds, 1)
    assert 0 < row["charged_cents"] < RATE
    assert await ledger.balance(pool, client.id) == 5_000 - row["charged_cents"]
    kinds = [r["kind"] for r in await pool.fetch("SELECT kind FROM ledger_transactions WHERE ref = $1 ORDER BY"
                                                 " created_at", session_id)]
    assert kinds == ["reading_minute", "refund"]
    assert await pool.fetchval("SELECT status FROM reader_availability WHERE reader_id = $1", reader.id) == "online"
    notes = await pool.fetch("SELECT user_id FROM notifications WHERE kind = 'session-ended' AND"
                             " payload->'session'->>'id' = $1", session_id)
    assert {str(n["user_id"]) for n in notes} == {client.id, reader.id}

    # A third start finds nothing more to do: no second refund, no second notification.
    async with serving(database_url, port, log):
        pass  # start-up adoption runs before the server is ready
    assert await pool.fetchval("SELECT count(*) FROM ledger_transactions WHERE ref = $1", session_id) == 2
    assert await ledger.balance(pool, client.id) == 5_000 - row["charged_cents"]
    assert len(await pool.fetch("SELECT 1 FROM notifications WHERE kind = 'session-ended'")) == 2
    await assert_ledger_invariants(pool)


async def test_a_video_reading_goes_on_after_kill_9_when_its_parties_rejoin_and_the_outage_is_not_billed(
        database_url: str, pool: asyncpg.Pool, tmp_path: Path) -> None:
    port, base, log = _server_place(tmp_path)
    reader, client = await _parties(pool)
    peers = []
    async with serving(database_url, port, log) as first:
        async with aiohttp.ClientSession(base_url=base) as http:
            session_id, sockets = await _started_video_reading(http, reader, client, peers)
            await sockets["client"].expect("session-state", timeout=10, billableSeconds=at_least(2))
            _kill(first, signal.SIGKILL)
        for peer in peers:
            await peer.close()
    crashed = await session_row(pool, session_id)
    before = crashed["meter_billable_seconds"]
    assert crashed["status"] == "active" and before >= 2

    peers = []
    async with serving(database_url, port, log):
        async with aiohttp.ClientSession(base_url=base) as http:
            # The browsers re-join (the join waits for the dead owner's lease to lapse) and offer again.
            sockets = await _join(http, session_id, {"client": client, "reader": reader})
            try:
                for role in ("client", "reader"):
                    peers.append(await connect_media(sockets[role], f"{role}-again"))
                back = await sockets["reader"].expect("session-state", running=True, timeout=20)
                back_at = time.monotonic()
                assert back["status"] == "active" and back["billableSeconds"] <= before + 1
                for peer in peers:
                    await peer.wait_decoded("video", 5, timeout=15)
                await sockets["client"].expect("session-state", timeout=10, billableSeconds=at_least(int(before) + 3))
                resp = await http.post(f"/api/webrtc/session/{session_id}/end", headers=client.headers)
                ended = (await resp.json())["session"]
                ran_since = time.monotonic() - back_at
            finally:
                for peer in peers:
                    await peer.close()
    assert ended["status"] == "ended" and ended["endReason"] == "ended_by_client"
    row = await session_row(pool, session_id)
    # Billed: the time before the crash and the time since both were back, never the outage between.
    assert int(before) + 3 <= row["meter_billable_seconds"] <= before + ran_since + 1
    assert row["charged_cents"] == net_cents(RATE, row["meter_billable_seconds"]) and row["lease_epoch"] == 2
    keys = [r["key"] for r in await pool.fetch("SELECT key FROM ledger_transactions WHERE ref = $1", session_id)]
    assert sorted(keys) == [f"reading:{session_id}:minute:0", f"reading:{session_id}:refund"]
    assert await ledger.balance(pool, client.id) == 5_000 - row["charged_cents"]
    await assert_ledger_invariants(pool)


async def _scheduled(pool: asyncpg.Pool, reader: Party, client: Party, starts_in: timedelta, minutes: int) -> tuple[
        str, datetime]:
    """A chat reading booked and paid (``PRICE``) in the reader's slot starting ``starts_in`` from now; a start
    in the past is booked as if just before it."""
    for minutes_option in (15, 30, 45, 60):
        await pool.execute(
            f"INSERT INTO reader_rates (reader_id, chat_cents, flat_{minutes_option}_cents) VALUES ($1, 100, $2)"
            f" ON CONFLICT (reader_id) DO UPDATE SET flat_{minutes_option}_cents = $2", reader.id, PRICE)
    starts_at = (datetime.now(UTC) + starts_in).replace(microsecond=0)
    slot = await slots.publish_slot(pool, reader_id=reader.id, starts_at=starts_at, minutes=minutes)
    booked_at = min(datetime.now(UTC), starts_at - timedelta(minutes=1))
    session, _ = await booking.book_slot(pool, slot_id=slot.id, client_id=client.id, session_type="chat",
                                       expected_cents=PRICE, now=booked_at)
    return str(session["id"]), starts_at


async def test_a_scheduled_reading_killed_before_its_start_resumes_when_its_parties_rejoin(
        database_url: str, pool: asyncpg.Pool, tmp_path: Path) -> None:
    # The repro: kill -9 a little into a 15-minute reading under way 6 minutes before its booked
    # start. Before, the next process ended it server_restart, kept all 1000 cents and left the slot booked.
    port, base, log = _server_place(tmp_path)
    reader, client = await _parties(pool)
    session_id, _ = await _scheduled(pool, reader, client, timedelta(minutes=6), 15)
    async with serving(database_url, port, log) as first:
        async with aiohttp.ClientSession(base_url=base) as http:
            sockets = await _join(http, session_id, {"client": client, "reader": reader})
            await sockets["client"].expect("start-session", timeout=10)
            await sockets["client"].expect("session-state", timeout=10, billableSeconds=at_least(2))
            _kill(first, signal.SIGKILL)
    async with serving(database_url, port, log):
        async with aiohttp.ClientSession(base_url=base) as http:
            sockets = await _join(http, session_id, {"client": client, "reader": reader})
            state = await sockets["client"].expect("session-state", running=True, timeout=10)
            assert state["status"] == "active" and state["chargedCents"] == PRICE
            row = await session_row(pool, session_id)
            assert (row["status"], row["lease_epoch"]) == ("active", 2)
            assert await pool.fetchval("SELECT count(*) FROM reader_slots WHERE session_id = $1", session_id) == 1
            await sockets["client"].send("chat-message", text="still here")
            assert (await sockets["reader"].expect("chat-message"))["text"] == "still here"
            # It is the reading as booked: the reader ending it before its start refunds everything.
            resp = await http.post(f"/api/webrtc/session/{session_id}/end", headers=reader.headers)
            assert (await resp.json())["session"]["endReason"] == "ended_by_reader"
    row = await session_row(pool, session_id)
    assert (row["status"], row["charged_cents"], row["refunded_cents"]) == ("ended", 0, PRICE)
    assert await pool.fetchval("SELECT count(*) FROM reader_slots WHERE session_id = $1", session_id) == 0
    assert await ledger.balance(pool, client.id) == 5_000
    await assert_ledger_invariants(pool)


async def test_a_scheduled_reading_stopped_by_sigterm_whose_parties_do_not_return_is_refunded_what_was_not_given(
        database_url: str, pool: asyncpg.Pool, tmp_path: Path) -> None:
    # The other repro: SIGTERM 13 s into a 30-minute reading. Before: ended, 1000 cents kept.
    port, base, log = _server_place(tmp_path)
    reader, client = await _parties(pool)
    session_id, starts_at = await _scheduled(pool, reader, client, -timedelta(seconds=30), 30)
    async with serving(database_url, port, log) as first:
        async with aiohttp.ClientSession(base_url=base) as http:
            sockets = await _join(http, session_id, {"client": client, "reader": reader})
            await sockets["client"].expect("start-session", timeout=10)
            await sockets["client"].expect("session-state", timeout=20, billableSeconds=at_least(13))
            _kill(first, signal.SIGTERM)
    handed = await session_row(pool, session_id)
    assert handed["status"] == "active"  # handed over, not ended
    async with serving(database_url, port, log, grace=3):
        async def ended() -> bool:
            return (await session_row(pool, session_id))["status"] == "ended"

        await wait_for(ended, timeout=30, interval=0.2)
    row = await session_row(pool, session_id)
    refund = not_given_refund(Booking(PRICE, starts_at, 30), handed["meter_heartbeat_at"])
    assert row["end_reason"] == "server_restart" and refund >= PRICE * 28 // 30
    assert (row["refunded_cents"], row["charged_cents"]) == (refund, PRICE - refund)
    assert await ledger.balance(pool, client.id) == 5_000 - PRICE + refund
    await assert_ledger_invariants(pool)
