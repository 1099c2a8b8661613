"""The pages in a browser that keeps its autoplay rules (sound only after a click), unlike the other browser tests.

A viewer who opens a stream's page directly: the video plays at once, muted, with a sound control in sight; while
the reader is away (a private reading) the page says the stream is paused; once it ends, nothing of a live stream
is left on the page. A reader's dashboard: a visible control turns the request sound on, and a request shows in
the page and the tab's title whether or not it can ring."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from tests.chromium import CHROMIUM_ARGS
from tests.web.conftest import Console, launched
from tests.web.pages_setup import post, signed_in
from tests.web.reading_pages import Party, done, funded_client, ready_reader, rising
from tests.web.test_stream_pages import STREAM_FRAMES, STREAM_SENT

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Chromium with its default autoplay policy (sound needs a click), unlike the other browser tests."""
    async with launched(CHROMIUM_ARGS) as chromium:
        yield chromium


@pytest.mark.slow
async def test_a_stream_opened_directly_plays_muted_pauses_while_its_reader_is_away_and_ends_clean(
        browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    context, user = await signed_in(browser, server, "reader", "Luna Hart")
    reader = Party(context, console.watch(await context.new_page()), user)
    await post(reader.context, user, "/api/webrtc/reader/rates", {"chatCents": 99, "videoCents": 199})
    await reader.page.goto("/live")
    await reader.page.get_by_label("Title").fill("Full moon tarot")
    await reader.page.get_by_role("button", name="Start streaming").click()
    await expect(reader.page.locator("[data-connection]")).to_have_text("Connected", timeout=20_000)
    await rising(reader.page, STREAM_SENT, above=5)
    stream_id = await reader.page.evaluate("window.soulseerStream.streamId")

    viewer = await funded_client(browser, server, console, database_url)
    await viewer.page.goto(f"/streams/{stream_id}")
    video = viewer.page.locator("[data-remote-video]")
    await expect(video).to_be_visible(timeout=20_000)
    await rising(viewer.page, STREAM_FRAMES, above=5)
    assert await video.evaluate("v => v.muted && !v.paused"), "the stream should play, muted, without a click"
    sound = viewer.page.get_by_role("button", name="Turn sound on")
    await expect(sound).to_be_visible()
    await sound.click()
    await expect(viewer.page.get_by_role("button", name="Mute")).to_have_attribute("aria-pressed", "true")
    assert await video.evaluate("v => !v.muted")

    # The reader leaves the studio (for a private reading, say): the stream is paused, not "live".
    await reader.page.close()
    await expect(viewer.page.locator("[data-stream-status]")).to_have_text("Paused")
    await expect(viewer.page.locator("[data-placeholder-text]")).to_contain_text("Luna Hart stepped away")
    await expect(viewer.page.locator("[data-private-panel]")).to_be_hidden()

    await post(reader.context, user, f"/api/streams/{stream_id}/end")
    await expect(viewer.page.locator("[data-placeholder-text]")).to_have_text(
        "This stream has ended. Thank you for watching!")
    for leftover in ("[data-sound-controls]", "[data-watching]", "[data-chat-form]", "[data-private-panel]",
                     "[data-gift-panel]"):
        await expect(viewer.page.locator(leftover)).to_be_hidden()
    await done(console, viewer, reader)


async def test_the_reader_turns_the_request_sound_on_and_sees_requests_without_it(
        browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    reader = await ready_reader(browser, server, console)
    client = await funded_client(browser, server, console, database_url, media=False)
    sound = reader.page.locator("[data-alert-sound]")
    await expect(sound).to_be_visible()
    # (Headless Chromium lets WebAudio start without a click, so the page may find the sound on already.)
    if await sound.get_attribute("aria-pressed") == "true":
        await sound.click()
    await expect(sound).to_have_text("Turn on request sound")
    await expect(sound).to_have_attribute("aria-pressed", "false")

    # Quiet, a request still shows in the page and in the tab's title.
    first = await post(client.context, client.user, "/api/webrtc/client/request-session",
                       {"readerId": reader.user["id"], "sessionType": "chat", "expectedCents": 99}, expect=201)
    incoming = reader.page.locator("[data-incoming]")
    await expect(incoming).to_contain_text("Ada Lovelace")
    await expect(reader.page).to_have_title("(1) New request · SoulSeer")
    assert await incoming.get_attribute("data-rang") is None
    await post(client.context, client.user, f"/api/webrtc/client/cancel-session/{first['session']['id']}")
    await expect(incoming).to_be_hidden()

    await sound.click()
    await expect(sound).to_have_text("Request sound on")
    await expect(sound).to_have_attribute("aria-pressed", "true")
    await post(client.context, client.user, "/api/webrtc/client/request-session",
               {"readerId": reader.user["id"], "sessionType": "chat", "expectedCents": 99}, expect=201)
    await expect(incoming).to_have_attribute("data-rang", "1")
    # Opened again, the page is quiet until a click (the browser's rule); the reader's choice is kept, so any
    # click on the page lets the sound play again.
    await reader.page.reload()
    await expect(sound).to_have_text("Turn on request sound")
    await reader.page.get_by_role("heading", name="Availability").click()
    await expect(sound).to_have_text("Request sound on")
    await done(console, client, reader)
