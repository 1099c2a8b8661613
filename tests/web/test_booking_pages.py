"""Booking in the browser: a reader sets weekly hours on their page; a client in another time zone sees the
times in their own zone with the price and the policy, books one, and finds it in the Upcoming list with its
.ics file and a join button that waits for the room to open; the room says when it opens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from api.core.keys import DATABASE
from billing import ledger
from tests.web.conftest import Console, shot
from tests.web.pages_setup import post, signed_in

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


async def test_a_client_books_a_readers_time_in_their_own_zone(browser: Browser, server: TestServer) -> None:
    console = Console()
    pool = server.app[DATABASE].pool
    reader_context, reader = await signed_in(browser, server, "reader", "Luna Vega")
    await post(reader_context, reader, "/api/webrtc/reader/rates", {
        "chatCents": 199, "audioCents": 299, "videoCents": 399,
        "flatCents": {"15": 0, "30": 3500, "45": 0, "60": 6000}})
    page = console.watch(await reader_context.new_page())
    await page.goto("/schedule")
    await page.get_by_label("Time zone").select_option("Asia/Tokyo")
    await page.get_by_role("checkbox", name="30 min").check()
    await page.get_by_role("checkbox", name="60 min").uncheck()
    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"):
        await page.locator(f'[data-add-hours="{day}"]').click()  # 9:00 to 12:00 by default
    await page.get_by_role("button", name="Save hours").click()
    await expect(page.locator("[data-form-status]")).to_have_text("Saved. Clients can book these hours now.")
    await shot(page, "booking-weekly-hours")

    # The client is in New York: Tokyo's 9:00 is 19:00 or 20:00 the day before there.
    client_context, me = await signed_in(browser, server, "client", "Ada Lovelace")
    await client_context.close()
    client_context = await browser.new_context(base_url=str(server.make_url("")).rstrip("/"),
                                               timezone_id="America/New_York", locale="en-US")
    client_context.set_default_timeout(15_000)
    response = await client_context.request.post("/api/auth/login", data={
        "email": me["email"], "password": "correct horse battery"})
    assert response.status == 200
    await ledger.deposit(pool, client_id=me["id"], cents=5000, key=f"test:{uuid.uuid4()}", source="manual")
    page = console.watch(await client_context.new_page())
    await page.goto(f"/readers/{reader['id']}/book")
    await expect(page.locator("[data-client-zone]")).to_have_text("America/New York")
    await page.get_by_role("radio", name="Audio").check()
    await page.locator("[data-days] button").nth(1).click()
    first_time = page.locator("[data-times] button").first
    await expect(first_time).to_have_text("7:00 PM")
    await first_time.click()
    await expect(page.locator("[data-summary-price]")).to_have_text("$35.00")
    await expect(page.locator("[data-summary-reader-time]")).to_have_text("9:00 AM (Asia/Tokyo)")
    await expect(page.locator("[data-policy]")).to_contain_text("Cancel at least 24 hours before the start")
    await expect(page.locator("[data-summary-balance]")).to_have_text("$50.00")
    await shot(page, "booking-page", doc=True)
    await page.get_by_role("button", name="Pay $35.00 and book").click()
    await expect(page.locator("[data-booked]")).to_be_visible()
    await expect(page.get_by_role("link", name="Wallet")).to_contain_text("$15.00")
    [row] = await pool.fetch("SELECT scheduled_start, session_type, charged_cents FROM rtc_sessions")
    assert row["scheduled_start"].astimezone(UTC).hour == 0  # 9:00 in Tokyo is midnight UTC
    assert (row["session_type"], row["charged_cents"]) == ("audio", 3500)
    assert row["scheduled_start"] > datetime.now(UTC)

    await page.get_by_role("link", name="See your upcoming readings").click()
    item = page.locator("[data-upcoming-id]")
    await expect(item).to_contain_text("30-minute audio reading with Luna Vega")
    await expect(item.locator("[data-opens-text]")).to_contain_text("opens at 6:50 PM")
    await expect(item.locator("[data-join]")).to_have_attribute("aria-disabled", "true")
    ics = await client_context.request.get(await item.locator("[data-ics]").get_attribute("href") or "")
    assert ics.status == 200 and "BEGIN:VEVENT" in await ics.text()
    await shot(page, "booking-upcoming")

    # The room before the start says when it opens, in local time.
    await item.locator("[data-join]").click(force=True)
    assert page.url.endswith("/upcoming")  # not open yet: the button does not lead anywhere
    session_id = await item.get_attribute("data-upcoming-id")
    await page.goto(f"/readings/{session_id}")
    heading = page.get_by_role("heading", name="Your 30-minute audio reading with Luna Vega opens soon")
    await expect(heading).to_be_visible()
    await expect(page.locator("[data-starts-at]")).to_contain_text("7:00 PM")

    # The reader was told, and sees it in their own list.
    page = await reader_context.new_page()
    await page.goto("/notifications")
    await expect(page.locator("main")).to_contain_text("Ada Lovelace booked a")
    await page.goto("/upcoming")
    await expect(page.locator("[data-upcoming-id]")).to_contain_text("with Ada Lovelace")
    assert console.violations() == []
