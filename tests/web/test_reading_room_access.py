"""The reading room by keyboard and for assistive technology: every control can be reached with Tab on both sides,
and axe-core finds no serious or critical violation in the live room."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect

from tests.web.accessibility import axe_violations
from tests.web.conftest import Console
from tests.web.reading_pages import FRAMES_DECODED, done, funded_client, ready_reader, request_and_accept, rising

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return "";
  return (el.getAttribute("aria-label") || el.textContent || el.getAttribute("placeholder") || el.id || el.tagName)
    .trim().replace(/\\s+/g, " ");
}"""


async def _tab_stops(page: Page, limit: int = 60) -> list[str]:
    """What Tab lands on, from the top of the page, once round (or ``limit`` presses)."""
    await page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
    stops: list[str] = []
    for _ in range(limit):
        await page.keyboard.press("Tab")
        stop = await page.evaluate(FOCUSED)
        if stops and stop == stops[0]:
            break
        stops.append(stop)
    return stops


async def test_every_control_of_the_room_is_reached_by_keyboard_and_axe_finds_nothing_serious(
        browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    reader = await ready_reader(browser, server, console)
    # Enough for the first minute only: the low-balance banner and its buttons are in the room too.
    client = await funded_client(browser, server, console, database_url, cents=250)
    await request_and_accept(client, reader, "video")
    for party in (client, reader):
        await expect(party.page.locator("[data-connection]")).to_have_text("Connected", timeout=20_000)
    await rising(client.page, FRAMES_DECODED, above=5)
    await expect(client.page.locator("[data-low-balance]")).to_be_visible()

    wanted = {
        "client": ["Mute microphone", "Turn camera off", "End reading", "Write a message…", "Send", "Add $10",
                   "Add $25"],
        "reader": ["Mute microphone", "Turn camera off", "End reading", "Write a message…", "Send"],
    }
    for who, party in (("client", client), ("reader", reader)):
        stops = await _tab_stops(party.page)
        missing = [name for name in wanted[who] if name not in stops]
        assert missing == [], f"{who}: not reached by Tab: {missing} (stops: {stops})"
        assert await axe_violations(party.page) == [], who
    await done(console, client, reader)
