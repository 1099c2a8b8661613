"""Steps of a reading as people take them in the browser pages: a reader gets ready, a client asks, the reader
accepts. What is not a page (money in a wallet) is the shared steps' (tests/reading_steps.py)."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.reading_steps import deposit
from tests.web.conftest import Console
from tests.web.media_stats import rtp_counter
from tests.web.pages_setup import signed_in

# The summary's heading: "Your video reading with Luna Hart has ended".
ENDED = re.compile(r"^Your (chat|audio|video) reading with .+ has ended$")
FRAMES_DECODED = rtp_counter("soulseerRoom", "inbound", "video", "framesDecoded")
AUDIO_RECEIVED = rtp_counter("soulseerRoom", "inbound", "audio", "packetsReceived")


@dataclass
class Party:
    context: BrowserContext
    page: Page
    user: dict[str, Any]


async def ready_reader(browser: Browser, server: TestServer | None, console: Console, *, name: str = "Luna Hart",
                       rates: tuple[str, str, str] = ("0.99", "1.49", "1.99"), base_url: str | None = None) -> Party:
    """A reader who registered, set rates on the dashboard and went online."""
    context, user = await signed_in(browser, server, "reader", name, base_url=base_url)
    page = console.watch(await context.new_page())
    await page.goto("/dashboard")
    for label, value in zip(("Chat", "Audio", "Video"), rates, strict=True):
        await page.get_by_label(label, exact=True).fill(value)
    await page.get_by_role("button", name="Save rates").click()
    await expect(page.locator("[data-rates-form] [data-form-status]")).to_have_text("Saved.")
    await page.get_by_role("switch").check()
    await expect(page.locator("[data-availability-status]")).to_have_text("Online")
    return Party(context, page, user)


async def funded_client(browser: Browser, server: TestServer | None, console: Console, database_url: str, *,
                        name: str = "Ada Lovelace", cents: int = 2000, media: bool = True,
                        base_url: str | None = None) -> Party:
    """A client whose wallet was credited through billing's ledger (a manual deposit, as the CLI makes)."""
    context, user = await signed_in(browser, server, "client", name, media=media, base_url=base_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        await deposit(pool, user["id"], cents)
    finally:
        await pool.close()
    page = console.watch(await context.new_page())
    return Party(context, page, user)


async def request_and_accept(client: Party, reader: Party, kind: str) -> str:
    """The client starts a reading from the home page; the reader hears the alert and accepts it."""
    await client.page.goto("/")
    card = client.page.locator(f'[data-reader-id="{reader.user["id"]}"]')
    await card.get_by_role("button", name=f"Start {kind}").click()
    await expect(client.page.get_by_role("heading", name="Waiting for")).to_be_visible()
    session_id = client.page.url.rsplit("/", 1)[1]

    incoming = reader.page.locator("[data-incoming]")
    await expect(incoming).to_be_visible()
    await expect(incoming).to_have_attribute("data-alerts", "1")
    await expect(incoming).to_contain_text(f"wants {'an' if kind == 'audio' else 'a'} {kind} reading")
    await incoming.get_by_role("button", name="Accept").click()
    await reader.page.wait_for_url(f"**/readings/{session_id}")
    return session_id


async def chat_under_way(browser: Browser, server: TestServer, console: Console,
                         database_url: str) -> tuple[Party, Party, str]:
    """A ready reader and a funded client (no camera) in a chat reading, accepted and connected on both pages:
    ``(client, reader, session id)``."""
    reader = await ready_reader(browser, server, console)
    client = await funded_client(browser, server, console, database_url, media=False)
    session_id = await request_and_accept(client, reader, "chat")
    for party in (client, reader):
        await expect(party.page.locator("[data-connection]")).to_have_text("Connected")
    return client, reader, session_id


async def end_reading(by: Party, *parties: Party) -> None:
    """``by`` ends the reading from its page; each of ``parties`` then sees the summary."""
    await by.page.get_by_role("button", name="End reading").click()
    for party in parties:
        await expect(party.page.get_by_role("heading", name=ENDED)).to_be_visible()


async def rising(page: Page, expression: str, *, above: int = 0, timeout: float = 20.0) -> int:
    """Wait until a stats counter passes ``above`` and then rises again; returns the last value."""
    deadline = time.monotonic() + timeout
    first = None
    while time.monotonic() < deadline:
        value = int(await page.evaluate(expression))
        if first is None and value > above:
            first = value
        elif first is not None and value > first:
            return value
        await asyncio.sleep(0.25)
    raise AssertionError(f"{expression[:40]}... did not rise above {above} and keep rising in {timeout} s")


async def send_chat(sender: Page, receiver: Page, text: str) -> None:
    await sender.get_by_label("Message to").fill(text)
    await sender.get_by_role("button", name="Send").click()
    await expect(receiver.locator("[data-chat-log] li.theirs").filter(has_text=text)).to_be_visible()
    await expect(sender.locator("[data-chat-log] li.mine").filter(has_text=text)).to_be_visible()


async def done(console: Console, *parties: Party) -> None:
    """The end of a browser test: no console error or policy violation, and every party's browser closed."""
    assert console.violations() == []
    for party in parties:
        await party.context.close()
