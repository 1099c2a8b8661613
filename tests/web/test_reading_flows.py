"""Whole readings in two real browsers (a reader and a client) through SoulSeer's relay."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from tests.web.conftest import Console, shot
from tests.web.reading_steps import (
    FRAMES_DECODED,
    funded_client,
    ready_reader,
    request_and_accept,
    rising,
    send_chat,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


async def test_a_video_reading_from_request_to_summary(browser: Browser, server: TestServer,
                                                       database_url: str) -> None:
    console = Console()
    reader = await ready_reader(browser, server, console)
    client = await funded_client(browser, server, console, database_url, cents=2000)
    session_id = await request_and_accept(client, reader, "video")

    for party in (client, reader):
        await expect(party.page.locator("[data-connection]")).to_have_text("Connected", timeout=20_000)
    await rising(client.page, FRAMES_DECODED, above=5)
    await rising(reader.page, FRAMES_DECODED, above=5)
    await expect(client.page.locator("[data-remote-video]")).to_be_visible()

    await send_chat(client.page, reader.page, "Hello, thank you for taking my call.")
    await send_chat(reader.page, client.page, "Welcome! What would you like to look at today?")

    await expect(client.page.locator("[data-charged]")).to_have_text("$1.99")
    await expect(client.page.locator("[data-balance]")).to_have_text("$18.01")
    await expect(client.page.locator("[data-timer]")).to_have_text(re.compile(r"0:0[2-9]|0:[1-5]\d"))
    await expect(reader.page.locator("[data-charged]")).to_have_text("$1.39")
    await shot(client.page, "reading-room-video", doc=True, full_page=False)
    await shot(reader.page, "reading-room-video-reader")

    await client.page.get_by_role("button", name="End reading").click()
    for party in (client, reader):
        await expect(party.page.get_by_role("heading", name="Your reading has ended")).to_be_visible()
    await expect(client.page.locator("[data-summary-reason]")).to_have_text("You ended the reading.")
    await expect(reader.page.locator("[data-summary-reason]")).to_have_text("Ada Lovelace ended the reading.")
    await expect(client.page.locator("[data-summary-transcript]")).to_contain_text("What would you like")
    charged = await client.page.locator("[data-summary-amount]").text_content()
    assert charged is not None and charged.startswith("$") and charged != "$0.00"
    await shot(client.page, "reading-summary", doc=True)

    await client.page.goto("/history")
    row = client.page.locator(f'tr[data-session-id="{session_id}"]')
    await expect(row).to_contain_text("Ended")
    await expect(row).to_contain_text(charged)
    await shot(client.page, "history", doc=True)
    assert console.violations() == []
    await client.context.close()
    await reader.context.close()
