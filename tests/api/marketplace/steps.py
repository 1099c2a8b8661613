"""Steps the marketplace tests share: a reader with a full profile, and readings in the states reviews care about."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from PIL import Image

from billing import ledger
from billing.recovery import minute_key
from billing.scheduled import book_scheduled, refund_scheduled
from tests.api.users import quick_user

RATES = {"chatCents": 150, "audioCents": 0, "videoCents": 299, "messageCents": 75,
         "flatCents": {"15": 2000, "30": 3500, "45": 0, "60": 6000}}


async def profiled_reader(client: TestClient, *, name: str = "Luna Hart", status: str = "online",
                          specialties: str = "Tarot, Dream work", languages: str = "English, Español",
                          bio: str = "Tarot for thirty years.") -> tuple[dict[str, Any], dict[str, str]]:
    reader, headers = await quick_user(client, "reader", name=name)
    assert (await client.post("/api/webrtc/reader/rates", json=RATES, headers=headers)).status == 200
    resp = await client.post("/api/webrtc/reader/profile", headers=headers,
                             json={"bio": bio, "specialties": specialties, "languages": languages})
    assert resp.status == 200, await resp.text()
    if status != "offline":
        assert (await client.post("/api/webrtc/reader/availability", json={"status": "online"},
                                  headers=headers)).status == 200
    return reader, headers


def a_jpeg(width: int = 640, height: int = 480) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", (width, height), (90, 60, 160))
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


async def ended_reading(pool: asyncpg.Pool, client_id: str, reader_id: str, *, paid_cents: int = 300,
                        refunded_cents: int = 0, mode: str = "per_minute", started: bool = True,
                        status: str = "ended") -> str:
    """A reading as the runtime leaves it, with its money in the ledger: ``paid_cents`` charged (one minute for a
    per-minute reading, the booking for a scheduled one), ``refunded_cents`` of it given back."""
    session_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    await pool.execute(
        "INSERT INTO rtc_sessions (id, client_id, reader_id, session_type, mode, status, rate_cents, requested_at,"
        " started_at, ended_at, scheduled_start, scheduled_minutes) VALUES ($1, $2, $3, 'chat', $4, $5, $6, $7, $8,"
        " $9, $10, $11)", session_id, client_id, reader_id, mode, status, paid_cents, now - timedelta(minutes=5),
        now - timedelta(minutes=4) if started else None, now if status == "ended" else None,
        now - timedelta(minutes=4) if mode == "scheduled" else None, 15 if mode == "scheduled" else None)
    if paid_cents:
        await ledger.deposit(pool, client_id=client_id, cents=paid_cents, key=f"dep:{session_id}", source="manual")
        if mode == "scheduled":
            await book_scheduled(pool, session_id=session_id, client_id=client_id, reader_id=reader_id,
                                 cents=paid_cents)
            if refunded_cents:
                await refund_scheduled(pool, session_id=session_id, cents=refunded_cents, reason="no-show")
        else:
            await ledger.charge(pool, client_id=client_id, reader_id=reader_id, cents=paid_cents,
                                key=minute_key(session_id, 0), kind="reading_minute", ref=session_id)
            if refunded_cents:
                await ledger.refund_charge(pool, original_key=minute_key(session_id, 0), cents=refunded_cents,
                                           key=f"refund:{session_id}")
    return session_id
