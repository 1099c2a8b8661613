"""Demo accounts for ``soulseer serve --demo``: a few online readers and a client with credit, made idempotently.

The passwords are demo passwords for accounts created on the operator's own machine and printed on start-up;
they are not secrets. The client's credit goes through billing's ledger (a ``manual`` deposit with a fixed
key per client), so it is a real, balanced ledger transaction that a second start does not repeat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from api.accounts import profiles
from api.accounts.login import create_user
from api.accounts.passwords import hash_password
from api.core.errors import Conflict
from api.core.keys import BILLING_METRICS, DATABASE, SETTINGS
from billing import ledger
from billing.metrics import BillingMetrics

log = logging.getLogger(__name__)

# Printed at start-up for the operator; these accounts exist only in a local demo database.
DEMO_PASSWORD = "demo-password"  # noqa: S105
CLIENT_CREDIT_CENTS = 5000


@dataclass(frozen=True)
class DemoReader:
    email: str
    display_name: str
    specialties: tuple[str, ...]
    bio: str
    chat_cents: int
    audio_cents: int
    video_cents: int


READERS = (
    DemoReader("luna@demo.soulseer.test", "Luna Hart", ("Tarot", "Love & relationships"),
               "Calm, practical tarot readings focused on the choices in front of you.", 99, 149, 199),
    DemoReader("orion@demo.soulseer.test", "Orion Vale", ("Astrology", "Career"),
               "Birth charts and transits, explained in plain words.", 149, 199, 249),
    DemoReader("sage@demo.soulseer.test", "Sage Okafor", ("Dream work", "Meditation"),
               "Gentle conversations about dreams, intuition and what they may be telling you.", 79, 129, 179),
)
CLIENT_EMAIL = "client@demo.soulseer.test"
CLIENT_NAME = "Demo Client"


@dataclass(frozen=True)
class DemoLogin:
    role: str
    email: str
    display_name: str


async def _account(conn: asyncpg.Connection, email: str, name: str, role: str) -> str:
    """The demo account's id, creating it the first time."""
    existing = await conn.fetchval("SELECT id FROM users WHERE lower(email) = $1", email)
    if existing is not None:
        return str(existing)
    try:
        row = await create_user(conn, email, await asyncio.to_thread(hash_password, DEMO_PASSWORD), name, role)
    except Conflict:  # created by a concurrent start
        return str(await conn.fetchval("SELECT id FROM users WHERE lower(email) = $1", email))
    return str(row["id"])


async def seed(pool: asyncpg.Pool, metrics: BillingMetrics | None = None) -> list[DemoLogin]:
    """Create or refresh the demo readers (online, rates, profile) and the demo client (with credit)."""
    logins: list[DemoLogin] = []
    async with pool.acquire() as conn:
        for reader in READERS:
            reader_id = await _account(conn, reader.email, reader.display_name, "reader")
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO reader_rates (reader_id, chat_cents, audio_cents, video_cents) VALUES ($1, $2, $3, $4)"
                    " ON CONFLICT (reader_id) DO UPDATE SET chat_cents = $2, audio_cents = $3, video_cents = $4,"
                    " updated_at = now()",
                    reader_id, reader.chat_cents, reader.audio_cents, reader.video_cents)
                await conn.execute(
                    "INSERT INTO reader_availability (reader_id, status, chosen_status) VALUES ($1, 'online', 'online')"
                    " ON CONFLICT (reader_id) DO UPDATE SET chosen_status = 'online', updated_at = now(),"
                    " status = CASE WHEN reader_availability.status = 'busy' THEN 'busy' ELSE 'online' END",
                    reader_id)
                current = await profiles.load(conn, reader_id)
                await profiles.save(conn, reader_id, profiles.Profile(
                    bio=reader.bio, specialties=reader.specialties, auto_accept=current.auto_accept))
                # Bookable too: flat prices (kept once a reader changed them) and, the first time, 9:00-21:00 UTC daily.
                await conn.execute(
                    "UPDATE reader_rates SET flat_30_cents = CASE WHEN flat_30_cents = 0 THEN $2 ELSE flat_30_cents"
                    " END, flat_60_cents = CASE WHEN flat_60_cents = 0 THEN $3 ELSE flat_60_cents END"
                    " WHERE reader_id = $1",
                    reader_id, reader.video_cents * 25, reader.video_cents * 45)
                if await conn.fetchval("INSERT INTO reader_schedules (reader_id, time_zone) VALUES ($1, 'UTC')"
                                       " ON CONFLICT DO NOTHING RETURNING reader_id", reader_id):
                    await conn.executemany(
                        "INSERT INTO reader_weekly_hours (reader_id, weekday, start_minute, end_minute)"
                        " VALUES ($1, $2, 540, 1260)", [(reader_id, day) for day in range(7)])
            logins.append(DemoLogin("reader", reader.email, reader.display_name))
        client_id = await _account(conn, CLIENT_EMAIL, CLIENT_NAME, "client")
    credit = await ledger.deposit(pool, client_id=client_id, cents=CLIENT_CREDIT_CENTS,
                                  key=f"demo-credit:{client_id}", source="manual", memo="demo credit",
                                  operator="soulseer serve --demo")
    if metrics is not None:
        metrics.recorded(credit)
    logins.append(DemoLogin("client", CLIENT_EMAIL, CLIENT_NAME))
    log.info("demo accounts ready", extra={"readers": len(READERS)})
    return logins


def banner(logins: list[DemoLogin], url: str) -> str:
    """What ``serve --demo`` prints: where to go and how to sign in."""
    lines = [f"SoulSeer demo at {url}  (every demo account's password: {DEMO_PASSWORD})"]
    for login in logins:
        lines.append(f"  {login.role:<6}  {login.email:<28}  {login.display_name}")
    lines.append("Sign in as the client in one browser and as a reader in another (or a private window).")
    return "\n".join(lines)


def install(app: web.Application, announce: Callable[[str], None]) -> None:
    """Seed the demo accounts once the database is open (after create_app's own start-up)."""

    async def on_startup(app: web.Application) -> None:
        logins = await seed(app[DATABASE].pool, app[BILLING_METRICS])
        announce(banner(logins, app[SETTINGS].public_url))

    app.on_startup.append(on_startup)
