"""A reading request as both people see it: the client's waiting screen, the reader's alert, and every way
a request can close unanswered (declined, cancelled, expired); automatic acceptance is in the chat reading."""

from __future__ import annotations

import re

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from tests.web.conftest import Console, shot
from tests.web.pages_setup import post
from tests.web.reading_pages import done, funded_client, ready_reader, request_and_accept

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


async def test_a_declined_request_then_a_cancelled_one(browser: Browser, server: TestServer,
                                                       database_url: str) -> None:
    console = Console()
    reader = await ready_reader(browser, server, console)
    client = await funded_client(browser, server, console, database_url)
    card = client.page.locator(f'[data-reader-id="{reader.user["id"]}"]')

    await client.page.goto("/")
    await card.get_by_role("button", name="Start chat").click()
    await expect(client.page.get_by_role("heading", name="Waiting for Luna Hart to accept")).to_be_visible()
    await expect(client.page.locator("[data-countdown]")).to_have_text(re.compile(r"^(1:00|0:[0-5]\d)$"))
    incoming = reader.page.locator("[data-incoming]")
    await expect(incoming).to_contain_text("Ada Lovelace")
    await shot(reader.page, "dashboard-incoming-request", doc=True)
    await incoming.get_by_role("button", name="Decline").click()
    await expect(incoming).to_be_hidden()
    await expect(client.page.get_by_role("heading", name="Luna Hart can't take this reading")).to_be_visible()
    await expect(client.page.get_by_text("You have not been charged.")).to_be_visible()

    await client.page.goto("/")
    await card.get_by_role("button", name="Start audio").click()
    await expect(incoming).to_contain_text("wants an audio reading")
    await client.page.get_by_role("button", name="Cancel request").click()
    await expect(client.page.get_by_role("heading", name="The request was cancelled")).to_be_visible()
    await expect(incoming).to_be_hidden()
    await done(console, client, reader)


async def test_an_unanswered_request_expires_with_a_clear_message(browser: Browser, quick_expiry_server: TestServer,
                                                                  database_url: str) -> None:
    console = Console()
    reader = await ready_reader(browser, quick_expiry_server, console)
    client = await funded_client(browser, quick_expiry_server, console, database_url)
    await client.page.goto("/")
    await client.page.locator(f'[data-reader-id="{reader.user["id"]}"]').get_by_role(
        "button", name="Start video").click()
    # Five seconds are short on a loaded machine: the countdown shows them, or says "a moment" at the end.
    await expect(client.page.locator("[data-countdown]")).to_have_text(re.compile(r"^(0:0[0-5]|a moment)$"))
    await shot(client.page, "waiting", doc=True)
    await expect(client.page.get_by_role("heading", name="The request expired")).to_be_visible(timeout=15_000)
    await expect(client.page.get_by_text("Luna Hart didn't answer in time.")).to_be_visible()
    await expect(reader.page.locator("[data-incoming]")).to_be_hidden()
    await done(console, client, reader)


async def test_a_rate_raised_after_the_page_showed_it_is_refused_and_the_new_rate_shown(
        browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    reader = await ready_reader(browser, server, console)
    client = await funded_client(browser, server, console, database_url)
    await client.page.goto("/")
    card = client.page.locator(f'[data-reader-id="{reader.user["id"]}"]')
    await expect(card.locator('[data-rate-for="chat"]')).to_have_text("$0.99/min")
    # While the client looks at $0.99, the reader raises the chat rate.
    await post(reader.context, reader.user, "/api/webrtc/reader/rates", {"chatCents": 240})

    await card.get_by_role("button", name="Start chat").click()
    await expect(card.locator("[data-card-error]")).to_have_text(
        "The price changed: a chat reading now costs $2.40/min (you saw $0.99/min). Nothing was charged."
        " Press Start chat again to start at the new rate.")
    await expect(card.locator('[data-rate-for="chat"]')).to_have_text("$2.40/min")
    await shot(client.page, "home-price-changed")
    assert client.page.url.endswith("/")
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM rtc_sessions") == 0
        # Pressing again is accepting the new rate: the request is made at it.
        await card.get_by_role("button", name="Start chat").click()
        await expect(client.page.get_by_role("heading", name="Waiting for Luna Hart to accept")).to_be_visible()
        assert await conn.fetchval("SELECT rate_cents FROM rtc_sessions") == 240
    finally:
        await conn.close()
    await done(console, client, reader)


async def test_the_accept_reaches_the_waiting_client_over_its_socket(browser: Browser, server: TestServer,
                                                                     database_url: str) -> None:
    console = Console()
    reader = await ready_reader(browser, server, console)
    client = await funded_client(browser, server, console, database_url, media=False)
    # Only the signaling socket can tell the client: the waiting screen's poll of the reading is refused.
    await client.page.route(re.compile(r"/api/webrtc/session/[0-9a-f-]{36}$"), lambda route: route.abort())
    await request_and_accept(client, reader, "chat")
    await expect(client.page.locator("[data-view='room']")).to_be_visible(timeout=5_000)
    for party in (client, reader):
        await expect(party.page.locator("[data-connection]")).to_have_text("Connected")
    await done(console, client, reader)
