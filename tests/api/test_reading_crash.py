"""Crash safety: a real ``soulseer serve`` is killed with SIGKILL in the middle of a paid video reading; the
next process settles that reading exactly once from its last heartbeat."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from billing import ledger
from billing.meter import net_cents, prorated_refund
from tests.api.reading_steps import Signal, deposit, quick_user, session_row, wait_for
from tests.api.test_reading_media import connect_media

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
RATE = 600  # 10 cents a second, so a few seconds make a visible refund


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(database_url: str, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "DATABASE_URL": database_url, "SOULSEER_PORT": str(port), "SOULSEER_LOG_JSON": "false",
           "SOULSEER_GRACE_SECONDS": "60", "SOULSEER_SECRET_KEY": "crash-test-secret-key"}
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "api.cli", "serve"], cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _ready(base: str) -> None:
    async with aiohttp.ClientSession() as http:

        async def up() -> bool:
            try:
                async with http.get(f"{base}/readyz") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(up, timeout=30, interval=0.1)


async def test_a_reading_interrupted_by_kill_9_is_settled_exactly_once(database_url: str, pool: asyncpg.Pool,
                                                                       tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    reader = await quick_user(pool, "reader")
    client = await quick_user(pool, "client")
    await deposit(pool, client.id, 5_000)
    peers = []
    with serve(database_url, port, log) as first:
        await _ready(base)
        async with aiohttp.ClientSession(base_url=base) as http:
            await http.post("/api/webrtc/reader/rates", headers=reader.headers, json={"videoCents": RATE})
            await http.post("/api/webrtc/reader/availability", headers=reader.headers, json={"status": "online"})
            resp = await http.post("/api/webrtc/client/request-session", headers=client.headers,
                                   json={"readerId": reader.id, "sessionType": "video", "expectedCents": RATE})
            session_id = (await resp.json())["session"]["id"]
            assert (await http.post(f"/api/webrtc/reader/accept-session/{session_id}",
                                    headers=reader.headers)).status == 200
            sockets: dict[str, Signal] = {}
            for role, party in (("client", client), ("reader", reader)):
                sockets[role] = Signal(await http.ws_connect("/ws", headers=party.headers))
                await sockets[role].join(session_id)
            for role in ("client", "reader"):
                peers.append(await connect_media(sockets[role], role))
            await sockets["client"].expect("start-session", timeout=20)

            async def heartbeats_written() -> bool:
                row = await session_row(pool, session_id)
                return row["meter_minutes_charged"] == 1 and row["meter_billable_seconds"] >= 3

            await wait_for(heartbeats_written, timeout=20, interval=0.1)
            first.send_signal(signal.SIGKILL)  # no clean-up, no settlement: the process is simply gone
            first.wait(10)
        for peer in peers:
            await peer.close()
    crashed = await session_row(pool, session_id)
    assert crashed["status"] == "active" and crashed["charged_cents"] == RATE
    seconds = crashed["meter_billable_seconds"]

    with serve(database_url, port, log):
        await _ready(base)

        async def settled() -> bool:
            return (await session_row(pool, session_id))["status"] == "ended"

        await wait_for(settled, timeout=20, interval=0.2)
    row = await session_row(pool, session_id)
    assert row["end_reason"] == "server_restart" and row["ended_at"] is not None
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
    with serve(database_url, port, log):
        await _ready(base)  # start-up recovery runs before the server is ready
    assert await pool.fetchval("SELECT count(*) FROM ledger_transactions WHERE ref = $1", session_id) == 2
    assert await ledger.balance(pool, client.id) == 5_000 - row["charged_cents"]
    assert len(await pool.fetch("SELECT 1 FROM notifications WHERE kind = 'session-ended'")) == 2
