"""Every page renders for its role, looks right at desktop and phone width, and breaks no CSP rule."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from api.cli import demo
from billing import ledger
from tests.reading_steps import deposit
from tests.web.conftest import PHONE, Console, new_context, shot
from tests.web.pages_setup import signed_in
from tests.web.reading_pages import ENDED

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


async def _reading(database_url: str, client_id: str, reader_id: str, **columns: object) -> str:
    """A reading row as the readings feature would leave it (only to look at its pages here)."""
    conn = await asyncpg.connect(database_url)
    try:
        names = ["client_id", "reader_id", "session_type", "rate_cents", *columns]
        values = [client_id, reader_id, columns.pop("session_type", "video"), columns.pop("rate_cents", 199),
                  *columns.values()]
        names = names[:4] + [n for n in names[4:] if n not in ("session_type", "rate_cents")]
        placeholders = ", ".join(f"${i + 1}" for i in range(len(values)))
        return str(await conn.fetchval(
            f"INSERT INTO rtc_sessions ({', '.join(names)}) VALUES ({placeholders}) RETURNING id", *values))
    finally:
        await conn.close()


async def test_the_reader_dashboard_saves_a_profile_and_shows_it_on_the_home_page(
        browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    reader_ctx, reader = await signed_in(browser, server, "reader", "Luna Hart")
    page = console.watch(await reader_ctx.new_page())
    await page.goto("/dashboard")
    await page.get_by_label("Specialties").fill("Tarot, Dream work ,  tarot, Astrology")
    await page.get_by_label("About you").fill("Twenty years of gentle, practical tarot.")
    await page.get_by_role("button", name="Save profile").click()
    await expect(page.get_by_label("Specialties")).to_have_value("Tarot, Dream work, Astrology")
    await shot(page, "dashboard")

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE reader_rates SET chat_cents = 99, audio_cents = 149, video_cents = 199"
                           " WHERE reader_id = $1", reader["id"])
        await conn.execute("UPDATE reader_availability SET status = 'online' WHERE reader_id = $1", reader["id"])
    finally:
        await conn.close()

    client_ctx, _ = await signed_in(browser, server, "client", "Ada")
    home = console.watch(await client_ctx.new_page())
    await home.goto("/")
    card = home.locator(f'[data-reader-id="{reader["id"]}"]')
    await expect(card).to_contain_text("Luna Hart")
    await expect(card).to_contain_text("Dream work")
    await expect(card).to_contain_text("$1.99/min")
    await expect(card.get_by_role("button", name="Start video")).to_be_visible()
    await shot(home, "home-one-reader")
    await home.set_viewport_size(PHONE)
    await shot(home, "home-one-reader-phone")
    assert console.violations() == []
    await reader_ctx.close()
    await client_ctx.close()


async def test_wallet_history_notifications_and_reading_pages_render(browser: Browser, server: TestServer,
                                                                     database_url: str) -> None:
    console = Console()
    client_ctx, client = await signed_in(browser, server, "client", "Ada Lovelace")
    reader_ctx, reader = await signed_in(browser, server, "reader", "Orion Vale")
    ended = await _reading(database_url, client["id"], reader["id"], status="ended", billable_seconds=754,
                           charged_cents=2587, end_reason="client_ended")
    # The summary shows the ledger's money for the reading (its charges less their refunds).
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        await deposit(pool, client["id"], 5000)
        await ledger.charge(pool, client_id=client["id"], reader_id=reader["id"], cents=2587,
                            key=f"test-charge:{ended}", kind="reading_minute", ref=ended)
    finally:
        await pool.close()
    waiting = await _reading(database_url, client["id"], reader["id"], session_type="chat", rate_cents=99)
    page = console.watch(await client_ctx.new_page())
    for path, name in [("/wallet", "wallet"), ("/history", "history"), ("/notifications", "notifications"),
                       (f"/readings/{ended}", "reading-summary"), (f"/readings/{waiting}", "waiting")]:
        await page.goto(path)
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        await shot(page, name)
    await page.goto(f"/readings/{ended}")
    await expect(page.get_by_role("heading", name=ENDED)).to_be_visible()
    await expect(page.locator("[data-summary-amount]")).to_have_text("$25.87")
    await expect(page.locator("[data-summary-duration]")).to_have_text("12:34")

    reader_page = console.watch(await reader_ctx.new_page())
    await reader_page.goto(f"/readings/{waiting}")
    await expect(reader_page.get_by_role("button", name="Accept")).to_be_visible()
    await shot(reader_page, "reader-incoming")
    await reader_page.goto("/wallet")
    await expect(reader_page).to_have_url(str(server.make_url("/dashboard")))
    assert console.violations() == []
    await client_ctx.close()
    await reader_ctx.close()


async def test_the_demo_client_sees_the_demo_readers(browser: Browser, server: TestServer, database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await demo.seed(pool)
    finally:
        await pool.close()
    console = Console()
    context = await new_context(browser, server)
    page = console.watch(await context.new_page())
    await page.goto("/login")
    await page.get_by_label("Email").fill(demo.CLIENT_EMAIL)
    await page.get_by_label("Password").fill(demo.DEMO_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_text("3 readers online")).to_be_visible()
    await expect(page.get_by_role("link", name="Wallet")).to_contain_text("$50.00")
    for reader in demo.READERS:
        await expect(page.get_by_role("article", name=reader.display_name)).to_contain_text(reader.specialties[0])
    await shot(page, "home", doc=True)
    await page.set_viewport_size(PHONE)
    await shot(page, "home-phone", doc=True)
    assert console.violations() == []
