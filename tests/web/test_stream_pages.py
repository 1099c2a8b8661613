"""Live streams and premium messages in real browsers: go live, watch, gift, chat, message and answer."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from tests.web.conftest import Console, shot
from tests.web.media_stats import rtp_counter
from tests.web.pages_setup import post, signed_in
from tests.web.reading_pages import Party, done, funded_client, rising

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

STREAM_FRAMES = rtp_counter("soulseerStream", "inbound", "video", "framesDecoded")
STREAM_SENT = rtp_counter("soulseerStream", "outbound", "video", "framesEncoded")


async def test_go_live_watch_gift_and_chat(browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    context, user = await signed_in(browser, server, "reader", "Luna Hart")
    reader = Party(context, console.watch(await context.new_page()), user)
    await reader.page.goto("/live")
    await reader.page.get_by_label("Title").fill("Full moon tarot")
    await reader.page.get_by_role("button", name="Start streaming").click()
    await expect(reader.page.locator("[data-local-video]")).to_be_visible()
    await expect(reader.page.locator("[data-connection]")).to_have_text("Connected", timeout=20_000)
    await rising(reader.page, STREAM_SENT, above=5)

    client = await funded_client(browser, server, console, database_url, name="Ada Lovelace", cents=5000)
    await client.page.goto("/")
    card = client.page.locator("[data-live-streams] .stream-card").filter(has_text="Full moon tarot")
    await expect(card).to_contain_text("Luna Hart")
    await shot(client.page, "home-live-now", full_page=False)
    await card.get_by_role("link", name="Full moon tarot").click()
    await expect(client.page.locator("[data-connection]")).to_have_text("Connected", timeout=20_000)
    await expect(client.page.locator("[data-remote-video]")).to_be_visible()
    await rising(client.page, STREAM_FRAMES, above=5)
    await expect(reader.page.locator("[data-viewer-count]")).to_have_text("1")

    await client.page.get_by_role("button", name="Send Crystal Ball for $10.00").click()
    for party in (client, reader):
        flight = party.page.locator("[data-gift-flight]").filter(has_text="Ada Lovelace sent Crystal Ball")
        await expect(flight).to_be_visible()
        await expect(party.page.locator("[data-leaderboard] li").first).to_contain_text("Ada Lovelace")
        await expect(party.page.locator("[data-leaderboard] li").first).to_contain_text("$10.00")
    await shot(client.page, "stream-watch-gift", doc=True, full_page=False)
    await shot(reader.page, "stream-live-studio", doc=True, full_page=False)
    await expect(client.page.locator("[data-nav-balance]")).to_have_text("$40.00")

    await client.page.get_by_label("Message to the stream").fill("What do the cards say about June?")
    await client.page.get_by_label("Message to the stream").press("Enter")
    await expect(reader.page.locator("[data-chat-log]")).to_contain_text("What do the cards say about June?")
    await reader.page.get_by_label("Message to your viewers").fill("Let's draw one!")
    await reader.page.get_by_role("button", name="Send").click()
    await expect(client.page.locator("[data-chat-log]")).to_contain_text("Let's draw one!")

    await reader.page.get_by_role("button", name="End stream").click()
    await expect(reader.page.get_by_role("heading", name="Your stream has ended")).to_be_visible()
    await expect(reader.page.locator("[data-ended-total]")).to_have_text("$10.00")
    await expect(client.page.locator("[data-placeholder-text]")).to_have_text(
        "This stream has ended. Thank you for watching!")
    await done(console, client, reader)


async def test_a_paid_message_and_its_free_answer(browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    context, user = await signed_in(browser, server, "reader", "Orion Vale", media=False)
    reader = Party(context, console.watch(await context.new_page()), user)
    await post(reader.context, user, "/api/webrtc/reader/rates",
               {"chatCents": 99, "audioCents": 149, "videoCents": 199, "messageCents": 250})
    client = await funded_client(browser, server, console, database_url, name="Grace Hopper", cents=1000,
                                 media=False)
    await client.page.goto(f"/messages?reader={user['id']}")
    await expect(client.page.locator("[data-price]")).to_contain_text("Each message costs $2.50")
    await client.page.get_by_label("Your message").fill("Is this a good month to change jobs?")
    await client.page.get_by_role("button", name="Send").click()
    await client.page.wait_for_url("**/messages/*")
    await expect(client.page.locator("[data-messages]")).to_contain_text("Is this a good month")
    await expect(client.page.locator("[data-nav-balance]")).to_have_text("$7.50")

    await reader.page.goto("/messages")
    item = reader.page.locator(".thread-item").filter(has_text="Grace Hopper")
    await expect(item.locator("[data-unread]")).to_have_text("1")
    await shot(reader.page, "inbox-unread", doc=True)
    await item.get_by_role("link").click()
    await expect(reader.page.locator("[data-messages]")).to_contain_text("Is this a good month")
    await expect(reader.page.locator(".thread-item [data-unread]")).to_have_count(0)
    await reader.page.get_by_label("Your message").fill("Yes: the Eight of Pentacles says so.")
    await reader.page.get_by_role("button", name="Send").click()
    # The client's open thread receives the answer live.
    await expect(client.page.locator("[data-messages]")).to_contain_text("Eight of Pentacles")
    await expect(client.page.locator("[data-nav-balance]")).to_have_text("$7.50")
    await shot(client.page, "inbox-thread", doc=True)
    await done(console, client, reader)


async def test_a_message_price_raised_while_writing_is_refused_and_the_new_price_shown(
        browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    context, user = await signed_in(browser, server, "reader", "Orion Vale", media=False)
    reader = Party(context, console.watch(await context.new_page()), user)
    await post(reader.context, user, "/api/webrtc/reader/rates", {"messageCents": 250})
    client = await funded_client(browser, server, console, database_url, name="Grace Hopper", cents=1000,
                                 media=False)
    await client.page.goto(f"/messages?reader={user['id']}")
    await expect(client.page.locator("[data-price]")).to_contain_text("Each message costs $2.50")
    await post(reader.context, user, "/api/webrtc/reader/rates", {"messageCents": 400})
    await client.page.get_by_label("Your message").fill("Is this a good month to change jobs?")
    await client.page.get_by_role("button", name="Send").click()
    await expect(client.page.locator("[data-message-error]")).to_have_text(
        "The price changed: a message to Orion Vale now costs $4.00 (you saw $2.50). Nothing was charged."
        " Press Send again to send it at the new price.")
    await expect(client.page.locator("[data-price]")).to_contain_text("Each message costs $4.00")
    await expect(client.page.locator("[data-nav-balance]")).to_have_text("$10.00")
    await client.page.get_by_role("button", name="Send").click()
    await client.page.wait_for_url("**/messages/*")
    await expect(client.page.locator("[data-messages]")).to_contain_text("Is this a good month")
    await expect(client.page.locator("[data-nav-balance]")).to_have_text("$6.00")
    await done(console, client, reader)


async def test_a_stream_tab_whose_login_ended_stops_reconnecting(browser: Browser, server: TestServer) -> None:
    """The server closes a logged-out tab's socket with 4401; the stream client, like the reading client, takes
    that as final (web/static/js/reconnect.js) instead of reconnecting for ever."""
    console = Console()
    reader_context, reader = await signed_in(browser, server, "reader", "Iris Moon", media=False)
    stream = (await post(reader_context, reader, "/api/streams", {"title": "Quiet hour"}, expect=201))["stream"]
    context, viewer = await signed_in(browser, server, "client", "Theo Watts", media=False)
    page = console.watch(await context.new_page())
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws))
    async with page.expect_websocket() as opened:
        await page.goto(f"/streams/{stream['id']}")
    socket = await opened.value
    await socket.wait_for_event("framereceived", lambda frame: '"joined"' in str(frame))
    await post(context, viewer, "/api/auth/logout")
    await expect(page.locator("[data-connection]")).to_have_text("Disconnected", timeout=10_000)
    assert len(sockets) == 1  # closed for good: no reconnect was scheduled
    await context.close()
    await reader_context.close()
