"""A scheduled reading, booked through the API, as both people see it on the pages: the appointment's own time
(in the viewer's time zone), a booked page instead of a live room before it opens, both told of the booking, a
cancellation that says what went back, the wallet's words for it, and a summary in the booking's terms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from billing import ledger
from tests.web.conftest import Console, shot
from tests.web.pages_setup import post, signed_in
from tests.web.reading_pages import ENDED, done, funded_client

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

FLAT = {"15": 600, "30": 1000, "45": 1400, "60": 1800}


async def test_a_booking_two_days_ahead_on_the_pages_and_its_cancellation(
        browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    reader_ctx, reader = await signed_in(browser, server, "reader", "Luna Hart", media=False)
    await post(reader_ctx, reader, "/api/webrtc/reader/rates", {"videoCents": 199, "flatCents": FLAT})
    starts = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    await post(reader_ctx, reader, "/api/webrtc/reader/slots",
               {"startsAt": starts.isoformat().replace("+00:00", "Z"), "minutes": 30}, expect=201)
    client = await funded_client(browser, server, console, database_url, media=False)
    booked = await post(client.context, client.user, "/api/webrtc/client/schedule-session",
                        {"readerId": reader["id"], "sessionType": "video", "minutes": 30, "expectedCents": 1000,
                         "startsAt": starts.isoformat().replace("+00:00", "Z")}, expect=201)
    session_id = booked["session"]["id"]
    local_start = await client.page.evaluate(
        "(iso) => new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })",
        starts.isoformat())

    # History: the appointment's time, not the booking's, and "Booked".
    await client.page.goto("/history")
    row = client.page.locator(f'tr[data-session-id="{session_id}"]')
    await expect(row.locator("time")).to_have_text(local_start)
    await expect(row).to_contain_text("Booked")
    await expect(row).not_to_contain_text("Accepted")

    # The reading's page two days ahead: a booked page, no live room, no raw timestamp.
    await client.page.goto(f"/readings/{session_id}")
    await expect(client.page.get_by_role("heading", name="Your 30-minute video reading with Luna Hart")).to_be_visible()
    await expect(client.page.locator("[data-starts-at]")).to_have_text(local_start)
    await expect(client.page.locator("[data-booked-countdown]")).to_contain_text("in 1 day")
    await expect(client.page.locator("[data-view='room']")).to_be_hidden()
    await expect(client.page.get_by_role("button", name="End reading")).to_be_hidden()
    await expect(client.page.locator("[data-toasts]")).to_be_empty()
    await shot(client.page, "booked-reading", doc=True)

    # Both were told.
    await client.page.goto("/notifications")
    await expect(client.page.locator(".notification").first).to_contain_text(
        "Your 30-minute video reading with Luna Hart is booked.")
    reader_page = console.watch(await reader_ctx.new_page())
    await reader_page.goto("/notifications")
    await expect(reader_page.locator(".notification").first).to_contain_text(
        "Ada Lovelace booked a video reading.")

    # Cancelled two days ahead: the page says what went back; the wallet names it.
    await client.page.goto(f"/readings/{session_id}")
    await client.page.get_by_role("button", name="Cancel booking").click()
    await expect(client.page.get_by_role("heading", name="The booking was cancelled")).to_be_visible()
    await expect(client.page.locator("[data-closed-money]")).to_have_text("The full $10.00 went back to your wallet.")
    await client.page.goto("/wallet")
    transactions = client.page.locator("[data-transactions]")
    await expect(transactions).to_contain_text("Booking refunded")
    await expect(transactions).to_contain_text("Booked reading")
    await expect(transactions).not_to_contain_text("Unused time returned")
    await done(console, client)
    await reader_ctx.close()


async def test_the_summary_of_a_booked_reading_speaks_of_the_booking(browser: Browser, server: TestServer,
                                                                       database_url: str) -> None:
    console = Console()
    client_ctx, client = await signed_in(browser, server, "client", "Ada Lovelace", media=False)
    reader_ctx, reader = await signed_in(browser, server, "reader", "Luna Hart", media=False)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        reading = str(await pool.fetchval(
            "INSERT INTO rtc_sessions (client_id, reader_id, session_type, mode, rate_cents, status, billable_seconds,"
            " charged_cents, end_reason, scheduled_start, scheduled_minutes, started_at, ended_at)"
            " VALUES ($1, $2, 'video', 'scheduled', 1000, 'ended', 600, 1000, 'ended_by_reader',"
            " now() - interval '10 minutes', 30, now() - interval '10 minutes', now()) RETURNING id",
            client["id"], reader["id"]))
        await ledger.deposit(pool, client_id=client["id"], cents=1000, key=f"test:{reading}:in", source="manual")
        await ledger.charge(pool, client_id=client["id"], reader_id=reader["id"], cents=1000,
                            key=f"test:{reading}:booking", kind="scheduled_reading", ref=reading)
        await ledger.refund_charge(pool, original_key=f"test:{reading}:booking", cents=667,
                                   key=f"test:{reading}:refund")
    finally:
        await pool.close()
    page = console.watch(await client_ctx.new_page())
    await page.goto(f"/readings/{reading}")
    await expect(page.get_by_role("heading", name=ENDED)).to_be_visible()
    summary = page.locator("[data-view='summary']")
    await expect(summary).to_contain_text("30 minutes for $10.00")
    await expect(summary).not_to_contain_text("/min")
    await expect(page.locator("[data-summary-amount]")).to_have_text("$3.33")
    await expect(page.locator("[data-summary-note]")).to_have_text(
        "Booked readings are paid when booked; what the booking's rules gave back is in your wallet.")
    assert console.violations() == []
    await client_ctx.close()
    await reader_ctx.close()
