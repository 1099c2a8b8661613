"""Whole readings in two real browsers (a reader and a client) through SoulSeer's relay."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from tests.web.conftest import PHONE, Console, shot
from tests.web.proxy import DroppingProxy
from tests.web.reading_pages import (
    AUDIO_RECEIVED,
    ENDED,
    FRAMES_DECODED,
    done,
    end_reading,
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
    await reader.page.set_viewport_size(PHONE)
    await shot(reader.page, "reading-room-video-phone")

    await end_reading(client, client, reader)
    await expect(client.page.locator("[data-summary-reason]")).to_have_text("You ended the reading.")
    await expect(reader.page.locator("[data-summary-reason]")).to_have_text("Ada Lovelace ended the reading.")
    await expect(client.page.locator("[data-summary-transcript]")).to_contain_text("What would you like")
    # The summary's amount is the ledger's, read once the end has committed.
    await expect(client.page.locator("[data-summary-amount]")).to_have_attribute("data-source", "ledger")
    charged = await client.page.locator("[data-summary-amount]").text_content()
    assert charged is not None and charged.startswith("$") and charged != "$0.00"
    await shot(client.page, "reading-summary", doc=True)

    await client.page.goto("/history")
    row = client.page.locator(f'tr[data-session-id="{session_id}"]')
    await expect(row).to_contain_text("Ended")
    await expect(row).to_contain_text(charged)
    await shot(client.page, "history")
    await done(console, client, reader)


async def test_an_audio_reading_ended_by_the_reader(browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    reader = await ready_reader(browser, server, console, name="Orion Vale")
    client = await funded_client(browser, server, console, database_url, name="Grace Hopper")
    await request_and_accept(client, reader, "audio")

    for party in (client, reader):
        await expect(party.page.locator("[data-connection]")).to_have_text("Connected", timeout=20_000)
        await expect(party.page.locator("[data-remote-video]")).to_have_count(0)
        await expect(party.page.locator("[data-placeholder-text]")).to_have_text("Audio reading · connected")
    await rising(client.page, AUDIO_RECEIVED, above=10)
    await rising(reader.page, AUDIO_RECEIVED, above=10)

    mute = client.page.get_by_role("button", name="Mute microphone")
    await mute.click()
    await expect(client.page.get_by_role("button", name="Unmute microphone")).to_have_attribute("aria-pressed", "true")
    await expect(client.page.locator("[data-charged]")).to_have_text("$1.49")
    await shot(client.page, "reading-room-audio", full_page=False)

    await reader.page.get_by_role("button", name="End reading").click()
    await expect(client.page.locator("[data-summary-reason]")).to_have_text("Orion Vale ended the reading.")
    await expect(reader.page.locator("[data-summary-reason]")).to_have_text("You ended the reading.")
    await done(console, client, reader)


async def test_a_chat_reading_accepted_automatically_with_no_camera_or_microphone(
        browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    reader = await ready_reader(browser, server, console, name="Sage Okafor")
    await reader.page.get_by_label("Accept requests automatically").check()
    await expect(reader.page.locator("[data-auto-accept-status]")).to_have_text(
        "Requests will be accepted automatically.")
    # Enough for one minute at $0.99 (and a bit): the low-balance banner shows from the start.
    client = await funded_client(browser, server, console, database_url, name="Ada", media=False, cents=150)
    await client.page.goto("/")
    await client.page.locator(f'[data-reader-id="{reader.user["id"]}"]').get_by_role(
        "button", name="Start chat").click()
    await reader.page.wait_for_url("**/readings/*")  # the reader's dashboard accepted and opened the room

    for party in (client, reader):
        await expect(party.page.locator("[data-connection]")).to_have_text("Connected", timeout=15_000)
        await expect(party.page.locator("[data-stage]")).to_have_count(0)
    await send_chat(client.page, reader.page, "Is this a good time to change jobs?")
    await send_chat(reader.page, client.page, "Let's look at what is pulling you each way.")
    await expect(client.page.locator("[data-charged]")).to_have_text("$0.99")
    await expect(client.page.locator("[data-timer]")).not_to_have_text("0:00")
    assert await client.page.evaluate("window.soulseerRoom.localStream") is None
    banner = client.page.locator("[data-low-balance]")
    await expect(banner).to_be_visible()
    await shot(client.page, "reading-room-chat", doc=True, full_page=False)
    # Without Stripe configured, adding funds says so, and the tab opened for Checkout is closed again.
    await banner.get_by_role("button", name="Add $10").click()
    await expect(client.page.locator("[data-top-up-error]")).to_have_text(
        "Card payments aren't available on this server right now.")
    await expect(client.page.locator("[data-connection]")).to_have_text("Connected")
    assert len(client.context.pages) == 1
    await client.page.get_by_role("button", name="End reading").click()
    await expect(reader.page.locator("[data-summary-transcript]")).to_contain_text("change jobs")
    await done(console, client, reader)


REFUSE_CAMERA = """
(() => {
  const devices = navigator.mediaDevices;
  const original = devices.getUserMedia.bind(devices);
  devices.getUserMedia = (constraints) => constraints && constraints.video
    ? Promise.reject(new DOMException("Permission denied", "NotAllowedError"))
    : original(constraints);
})();
"""


async def test_a_refused_camera_turns_a_video_reading_into_audio_for_that_side(
        browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    reader = await ready_reader(browser, server, console)
    client = await funded_client(browser, server, console, database_url)
    await client.context.add_init_script(REFUSE_CAMERA)
    await request_and_accept(client, reader, "video")

    notice = client.page.locator("[data-media-error]")
    await expect(notice).to_contain_text("We couldn't use your camera, so the reading continues with audio only")
    await expect(client.page.get_by_role("button", name="Camera unavailable")).to_be_disabled()
    for party in (client, reader):
        await expect(party.page.locator("[data-connection]")).to_have_text("Connected", timeout=20_000)
    await rising(client.page, FRAMES_DECODED, above=5)  # the client still sees the reader
    await rising(reader.page, AUDIO_RECEIVED, above=10)  # and the reader hears the client
    await shot(client.page, "reading-room-camera-refused", full_page=False)
    await client.page.get_by_role("button", name="End reading").click()
    await expect(reader.page.get_by_role("heading", name=ENDED)).to_be_visible()
    await client.context.close()
    await reader.context.close()


async def test_a_dropped_connection_recovers_by_itself(browser: Browser, server: TestServer,
                                                       database_url: str) -> None:
    console = Console()
    # The client reaches the app through a proxy whose connections the test cuts, like a network drop.
    proxy = DroppingProxy(server.port or 0)
    await proxy.start()
    try:
        reader = await ready_reader(browser, server, console)
        client = await funded_client(browser, server, console, database_url, base_url=proxy.url)
        await request_and_accept(client, reader, "video")
        for party in (client, reader):
            await expect(party.page.locator("[data-connection]")).to_have_text("Connected", timeout=20_000)
        await rising(reader.page, FRAMES_DECODED, above=5)

        assert proxy.drop() >= 1
        await expect(client.page.locator("[data-reconnecting]")).to_be_visible()
        await expect(client.page.locator("[data-connection]")).to_have_text("Reconnecting…")
        await shot(client.page, "reading-room-reconnecting", full_page=False)

        await expect(client.page.locator("[data-connection]")).to_have_text("Connected", timeout=20_000)
        await expect(client.page.locator("[data-reconnecting]")).to_be_hidden()
        await rising(client.page, FRAMES_DECODED, above=5)
        await rising(reader.page, FRAMES_DECODED, above=5)
        await send_chat(client.page, reader.page, "Sorry, my connection dropped.")
        await client.page.get_by_role("button", name="End reading").click()
        await expect(reader.page.get_by_role("heading", name=ENDED)).to_be_visible()
        assert console.violations() == []
        await client.context.close()
        await reader.context.close()
    finally:
        await proxy.close()
