"""What the reading room tells each side while things change under it: the chat kept across a reload, the other
side gone (with the grace left, and not billed), and a request banner that goes when the request does."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from tests.web.conftest import Console, shot
from tests.web.pages_setup import post
from tests.web.reading_pages import (
    ENDED,
    chat_under_way,
    done,
    funded_client,
    ready_reader,
    send_chat,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


async def test_the_chat_survives_a_reload_and_the_reader_is_told_the_client_left(
        browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    client, reader, session_id = await chat_under_way(browser, server, console, database_url)
    await send_chat(client.page, reader.page, "Is this a good time to change jobs?")
    await send_chat(reader.page, client.page, "Let's look at what is pulling you each way.")

    await client.page.reload()
    log = client.page.locator("[data-chat-log]")
    await expect(log.locator("li.mine")).to_have_text([re.compile("change jobs")])
    await expect(log.locator("li.theirs")).to_have_text([re.compile("pulling you each way")])
    await expect(client.page.locator("[data-connection]")).to_have_text("Connected")

    # The client closes the tab: the reader is told, with the time left to come back, and is not billing.
    away = reader.page.locator("[data-other-away]")
    await expect(away).to_be_hidden()
    await client.page.close()
    await expect(away).to_be_visible()
    await expect(away).to_contain_text("Ada Lovelace reconnecting… (not billed)")
    await expect(away).to_contain_text(re.compile(r"The reading ends in 0:[0-5]\d unless they are back"))
    await expect(reader.page.locator("[data-connection]")).to_have_text("Connected")  # the reader's own link
    await shot(reader.page, "reading-room-client-away", doc=True, full_page=False)

    client.page = console.watch(await client.context.new_page())
    await client.page.goto(f"/readings/{session_id}")
    await expect(client.page.locator("[data-connection]")).to_have_text("Connected")
    await expect(away).to_be_hidden()
    await send_chat(client.page, reader.page, "Sorry, I closed the tab.")
    await reader.page.get_by_role("button", name="End reading").click()
    await expect(client.page.get_by_role("heading", name=ENDED)).to_be_visible()
    transcript = client.page.locator("[data-summary-transcript]")
    for line in ("change jobs", "pulling you each way", "closed the tab"):
        await expect(transcript).to_contain_text(line)
    await done(console, client, reader)


@pytest.mark.slow
async def test_a_private_request_banner_on_the_studio_goes_when_the_client_cancels(
        browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    reader = await ready_reader(browser, server, console)
    await reader.page.goto("/live")
    await reader.page.get_by_label("Title").fill("Full moon tarot")
    await reader.page.get_by_role("button", name="Start streaming").click()
    await expect(reader.page.locator("[data-connection]")).to_have_text("Connected", timeout=20_000)
    client = await funded_client(browser, server, console, database_url, media=False)
    body = await post(client.context, client.user, "/api/webrtc/client/request-session",
                      {"readerId": reader.user["id"], "sessionType": "chat", "expectedCents": 99}, expect=201)
    banner = reader.page.locator("[data-request]")
    await expect(banner).to_contain_text("Ada Lovelace asks for a private chat reading.")
    await post(client.context, client.user, f"/api/webrtc/client/cancel-session/{body['session']['id']}")
    await expect(banner).to_be_hidden()
    await done(console, client, reader)
