"""Every money figure of a reading's pages is the ledger's: the summary both sides see when it ends, the summary
opened later, and the history, all agree with what GET /api/webrtc/session/{id} reads from the ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from api.pages.format import money
from billing.statements import ReadingTotals, reading_totals
from config import Settings
from tests.web.conftest import Console, app_with
from tests.web.reading_pages import chat_under_way, done, end_reading

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


async def _ledger_totals(database_url: str, session_id: str) -> ReadingTotals:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        return await reading_totals(pool, session_id)
    finally:
        await pool.close()


async def test_the_summaries_and_history_show_the_ledgers_money_after_the_last_minute_is_refunded(
        browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    client, reader, session_id = await chat_under_way(browser, server, console, database_url)
    # The first minute is charged at its start: the reader's live share is 70% of it.
    await expect(client.page.locator("[data-charged]")).to_have_text("$0.99")
    await expect(reader.page.locator("[data-charged]")).to_have_text("$0.69")
    await end_reading(reader, client, reader)
    totals = await _ledger_totals(database_url, session_id)
    # Most of the minute went back: the ledger's figures are well under the live ones.
    assert 0 < totals.charged_cents < 99 and totals.earned_cents < 69
    earned, charged = money(totals.earned_cents), money(totals.charged_cents)
    await expect(reader.page.locator("[data-summary-amount]")).to_have_text(earned)
    await expect(client.page.locator("[data-summary-amount]")).to_have_text(charged)
    # Each goes back to their own home: the client to the readers, the reader to the dashboard.
    await expect(client.page.get_by_role("link", name="Back to readers")).to_have_attribute("href", "/")
    await expect(reader.page.get_by_role("link", name="Back to your dashboard")).to_have_attribute("href", "/dashboard")
    api = await reader.context.request.get(f"/api/webrtc/session/{session_id}")
    assert (await api.json())["money"] == {"chargedCents": totals.charged_cents, "earnedCents": totals.earned_cents}
    api = await client.context.request.get(f"/api/webrtc/session/{session_id}")
    assert (await api.json())["money"] == {"chargedCents": totals.charged_cents}  # no reader figures to a client

    for party, figure in ((reader, earned), (client, charged)):
        await party.page.reload()
        await expect(party.page.locator("[data-summary-amount]")).to_have_text(figure)
        await party.page.goto("/history")
        await expect(party.page.locator(f'tr[data-session-id="{session_id}"] [data-money]')).to_have_text(figure)
    # The dashboard's latest earnings name the refund in words.
    await reader.page.goto("/dashboard")
    await expect(reader.page.locator("[data-earnings-list]")).to_contain_text("Unused time returned to the client")
    await done(console, client, reader)


@pytest_asyncio.fixture(loop_scope="module")
async def intro_server(settings: Settings, browser: Browser) -> AsyncIterator[TestServer]:
    """The app with the intro offer on: a client's first minute with a new reader is free."""
    async with app_with(settings, browser, intro_free_minutes=1) as test_server:
        yield test_server


async def test_a_free_intro_minute_is_the_readers_earnings_on_the_summary_and_costs_the_client_nothing(
        browser: Browser, intro_server: TestServer, database_url: str) -> None:
    console = Console()
    client, reader, session_id = await chat_under_way(browser, intro_server, console, database_url)
    await expect(reader.page.locator("[data-charged]")).to_have_text("$0.69")  # the platform pays the minute
    await end_reading(client, client, reader)
    totals = await _ledger_totals(database_url, session_id)
    assert totals.charged_cents == 0 and totals.earned_cents > 0
    await expect(reader.page.locator("[data-summary-amount]")).to_have_text(money(totals.earned_cents))
    await expect(client.page.locator("[data-summary-amount]")).to_have_text("$0.00")
    await done(console, client, reader)
