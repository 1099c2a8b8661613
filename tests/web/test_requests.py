"""A reading request as both people see it: the client's waiting screen, the reader's alert, and every way
a request can close unanswered (declined, cancelled, expired); automatic acceptance is in the chat reading."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from tests.web.conftest import Console, shot
from tests.web.reading_steps import funded_client, ready_reader

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
    assert console.violations() == []
    await client.context.close()
    await reader.context.close()


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
    assert console.violations() == []
    await client.context.close()
    await reader.context.close()
