"""The marketplace in Chromium: rating and tipping after a paid reading and the review on the profile (with the
reader's reply), a favourite's live alert, and searching the home page."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from billing import ledger
from tests.api.marketplace.steps import ended_reading
from tests.web.conftest import PHONE, Console, shot
from tests.web.pages_setup import post, signed_in

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


async def test_a_client_rates_and_tips_after_a_paid_reading_and_the_reader_replies(
        browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    reader_ctx, reader = await signed_in(browser, server, "reader", "Luna Hart", media=False)
    await post(reader_ctx, reader, "/api/webrtc/reader/rates", {"chatCents": 199})
    client_ctx, me = await signed_in(browser, server, "client", "Sam Kowalski", media=False)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        session_id = await ended_reading(pool, me["id"], reader["id"], paid_cents=398)
        await ledger.deposit(pool, client_id=me["id"], cents=500, key=f"tip-money:{me['id']}", source="manual")
    finally:
        await pool.close()

    page = console.watch(await client_ctx.new_page())
    await page.goto(f"/readings/{session_id}")
    after = page.locator("[data-after-reading]")
    await expect(after.get_by_role("heading", name="How was your reading with Luna Hart?")).to_be_visible()
    await after.locator('label[for="star-4"]').click()
    await after.get_by_label("Your review (optional)").fill("Kind, clear and honest.")
    await after.get_by_role("button", name="Post review").click()
    await expect(after.locator("[data-rate-status]")).to_contain_text("your 4-star review is posted")
    await after.get_by_role("button", name="Tip Rose, $1.00").click()
    await expect(after.locator("[data-tip-status]")).to_have_text("Thank you: you sent a Rose ($1.00).")
    await expect(after.get_by_role("link", name="Book again")).to_have_attribute(
        "href", f"/readers/{reader['id']}/book")
    await shot(page, "after-reading")

    await page.get_by_role("link", name="Luna Hart's profile").click()
    await expect(page.get_by_text("Kind, clear and honest.")).to_be_visible()
    await expect(page.locator("[data-rating]").first).to_have_attribute(
        "aria-label", "Rated 4.0 out of 5 from 1 review")

    own = console.watch(await reader_ctx.new_page())
    await own.goto(f"/readers/{reader['id']}")
    await own.get_by_label("Your answer to Sam K.").fill("Thank you, Sam.")
    await own.get_by_role("button", name="Reply").click()
    await expect(own.get_by_text("Luna Hart replied: Thank you, Sam.")).to_be_visible()
    await page.reload()
    await expect(page.get_by_text("Luna Hart replied: Thank you, Sam.")).to_be_visible()
    assert console.violations() == []


async def test_a_favourite_going_online_shows_a_live_alert(browser: Browser, server: TestServer) -> None:
    console = Console()
    reader_ctx, reader = await signed_in(browser, server, "reader", "Orion Vale", media=False)
    await post(reader_ctx, reader, "/api/webrtc/reader/rates", {"chatCents": 99})  # needed to go online
    client_ctx, _ = await signed_in(browser, server, "client", "Ada", media=False)
    page = console.watch(await client_ctx.new_page())
    await page.goto(f"/readers/{reader['id']}")
    favourite = page.get_by_role("button", name="Favourite")
    await favourite.click()
    await expect(page.get_by_role("button", name="Favourited")).to_have_attribute("aria-pressed", "true")
    await page.goto("/")
    # The page says when its socket is open (the server registers it before the handshake's answer arrives).
    await expect(page.locator("html")).to_have_attribute("data-live-alerts", "open")
    await post(reader_ctx, reader, "/api/webrtc/reader/availability", {"status": "online"})
    alert = page.locator('[data-live-alert="reader-online"]')
    await expect(alert).to_contain_text("Orion Vale is online now.", timeout=20_000)
    await expect(page.locator("[data-unread-count]")).to_have_text("1")
    await alert.get_by_role("link", name="See profile").click()
    await expect(page.get_by_role("heading", name="Orion Vale", level=1)).to_be_visible()
    await page.goto("/notifications")
    await expect(page.get_by_text("Orion Vale is online now.")).to_be_visible()
    assert console.violations() == []


async def test_searching_filtering_and_paging_the_home_page(browser: Browser, server: TestServer,
                                                             database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "WITH u AS (INSERT INTO users (email, password_hash, display_name, role, created_at)"
            " SELECT 'r' || n || '@x.test', 'x', 'Reader ' || lpad(n::text, 2, '0'), 'reader',"
            " now() - n * interval '1 minute' FROM generate_series(1, 30) n RETURNING id, display_name),"
            " a AS (INSERT INTO reader_availability (reader_id, status) SELECT id,"
            " CASE WHEN display_name < 'Reader 06' THEN 'online' ELSE 'offline' END FROM u),"
            " p AS (INSERT INTO reader_profiles (reader_id, specialties) SELECT id,"
            " CASE WHEN display_name < 'Reader 11' THEN ARRAY['Tarot'] ELSE ARRAY['Astrology'] END FROM u)"
            " INSERT INTO reader_rates (reader_id, chat_cents, video_cents) SELECT id,"
            " 50 + right(display_name, 2)::int * 10, 0 FROM u")
    finally:
        await conn.close()
    console = Console()
    client_ctx, _ = await signed_in(browser, server, "client", "Ada", media=False, viewport=PHONE)
    page = console.watch(await client_ctx.new_page())
    await page.goto("/")
    results = page.locator("[data-results] [data-reader-id]")
    await expect(page.locator("[data-result-count]")).to_have_text("30 readers")
    await expect(results).to_have_count(24)
    await page.get_by_role("link", name="Next").click()
    await expect(page.get_by_text("Page 2 of 2")).to_be_visible()
    await expect(results).to_have_count(6)

    await page.get_by_label("Specialty").fill("tarot")
    await page.get_by_label("Sort by").select_option("price")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("[data-result-count]")).to_have_text("10 readers")
    await expect(results.first).to_contain_text("Reader 01")
    await expect(page.get_by_role("heading", name="Readers matching your search")).to_be_visible()
    await page.get_by_label("Online now").check()
    await page.get_by_label("Up to, per minute").select_option("100")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("[data-result-count]")).to_have_text("5 readers")
    await expect(page.get_by_label("Online now")).to_be_checked()
    await shot(page, "home-search-phone")
    await results.first.get_by_role("link", name="Reader 01").click()
    await expect(page.get_by_role("heading", name="Reader 01", level=1)).to_be_visible()
    assert console.violations() == []
