"""A reader is shown online only when someone is there to answer: not without rates (the dashboard's checklist
says what is missing), not once every tab of theirs has closed, and not after a request went unanswered."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, expect

from config import Settings
from tests.web.conftest import Console, app_with, shot
from tests.web.pages_setup import post, signed_in
from tests.web.reading_pages import done, funded_client, ready_reader

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module")
async def quick_server(settings: Settings, browser: Browser) -> AsyncIterator[TestServer]:
    """Readers shown away 2 s after their last socket closes; requests expire after 5 s."""
    async with app_with(settings, browser, away_after_seconds=2, request_expiry_seconds=5) as test_server:
        yield test_server


async def _listed(context: BrowserContext, reader_id: str) -> str | None:
    """The reader's status as clients are given it (None: not among the readers a client can book now)."""
    body = await (await context.request.get("/api/webrtc/client/available-readers")).json()
    return next((r["status"] for r in body["readers"] if r["id"] == reader_id), None)


async def test_a_reader_without_rates_is_told_what_is_missing_before_going_online(
        browser: Browser, server: TestServer) -> None:
    console = Console()
    context, _ = await signed_in(browser, server, "reader", "Luna Hart", media=False)
    page = console.watch(await context.new_page())
    await page.goto("/dashboard")
    checklist = page.locator("[data-checklist]")
    await expect(checklist).to_be_visible()
    await expect(checklist.locator('[data-check="displayName"]')).to_have_attribute("data-done", "true")
    await expect(checklist.locator('[data-check="rates"]')).to_have_attribute("data-done", "false")
    await page.get_by_role("switch").click()  # refused: the switch goes back off
    await expect(page.locator("[data-availability-error]")).to_have_text(
        "Add a per-minute rate for chat, audio or video before going online.")
    await expect(page.locator("[data-availability-status]")).to_have_text("Offline")
    await expect(page.get_by_role("switch")).not_to_be_checked()
    await shot(page, "dashboard-checklist", doc=True)

    await page.get_by_label("Chat", exact=True).fill("0.99")
    await page.get_by_role("button", name="Save rates").click()
    await expect(checklist).to_be_hidden()
    await page.get_by_role("switch").check()
    await expect(page.locator("[data-availability-status]")).to_have_text("Online")
    assert console.violations() == []
    await context.close()


async def test_a_reader_whose_every_tab_closed_is_shown_away_and_back_when_they_return(
        browser: Browser, quick_server: TestServer, database_url: str) -> None:
    console = Console()
    reader = await ready_reader(browser, quick_server, console)
    client = await funded_client(browser, quick_server, console, database_url, media=False)
    assert await _listed(client.context, reader.user["id"]) == "online"
    await reader.page.close()
    await client.page.goto("/")
    card = client.page.locator(f'[data-reader-id="{reader.user["id"]}"]')
    for _ in range(40):  # shown away once the grace (2 s) is over: ask again every 250 ms, for 10 s at most
        if await _listed(client.context, reader.user["id"]) is None:
            break
        await client.page.wait_for_timeout(250)
    assert await _listed(client.context, reader.user["id"]) is None
    await client.page.reload()
    await expect(card.locator("[data-reader-status]")).to_have_text("Offline")
    await expect(card.get_by_role("button", name="Start chat")).to_have_count(0)

    # Back on the dashboard (their choice was to be online): shown online again.
    reader.page = console.watch(await reader.context.new_page())
    await reader.page.goto("/dashboard")
    await expect(reader.page.locator("[data-availability-status]")).to_have_text("Online")
    await client.page.reload()
    await expect(card.locator("[data-reader-status]")).to_have_text("Online")
    await done(console, client, reader)


async def test_a_missed_request_sets_the_reader_away_until_they_are_back(
        browser: Browser, quick_server: TestServer, database_url: str) -> None:
    console = Console()
    reader = await ready_reader(browser, quick_server, console)
    client = await funded_client(browser, quick_server, console, database_url, media=False)
    await post(client.context, client.user, "/api/webrtc/client/request-session",
               {"readerId": reader.user["id"], "sessionType": "chat", "expectedCents": 99}, expect=201)
    await expect(reader.page.locator("[data-incoming]")).to_be_visible()
    # Nobody answers for 5 s.
    await expect(reader.page.locator("[data-availability-error]")).to_have_text(
        "You missed a request, so clients see you as away. Switch on when you're back.", timeout=15_000)
    await expect(reader.page.get_by_role("switch")).not_to_be_checked()
    await expect(reader.page.locator("[data-incoming]")).to_be_hidden()
    assert await _listed(client.context, reader.user["id"]) is None
    await reader.page.get_by_role("switch").check()
    await expect(reader.page.locator("[data-availability-status]")).to_have_text("Online")
    assert await _listed(client.context, reader.user["id"]) == "online"
    await done(console, client, reader)
