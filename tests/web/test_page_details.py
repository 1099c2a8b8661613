"""The small things people ran into on the pages: a styled 404, every wrong price flagged, server refusals in
words with a link, one way of writing times (the viewer's own locale and time zone), a reader and a kind of
reading chosen before logging in remembered after, and the price of a message on the reader's dashboard."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from tests.web.conftest import Console, new_context, shot
from tests.web.pages_setup import PASSWORD, post, signed_in
from tests.web.reading_pages import done, funded_client

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

# "Dec 1, 2026, 6:15 PM": en-US's medium date and short time, the one format of every time on the pages.
ONE_FORMAT = re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}\s?[AP]M$")


async def _online_reader(browser: Browser, server: TestServer, name: str = "Luna Hart",
                         message_cents: int = 0):  # type: ignore[no-untyped-def]
    context, user = await signed_in(browser, server, "reader", name, media=False)
    await post(context, user, "/api/webrtc/reader/rates",
               {"chatCents": 99, "audioCents": 149, "videoCents": 199, "messageCents": message_cents})
    await post(context, user, "/api/webrtc/reader/availability", {"status": "online"})
    return context, user


async def test_unknown_addresses_get_the_styled_404_page(browser: Browser, server: TestServer) -> None:
    console = Console()
    client_ctx, _ = await signed_in(browser, server, "client", "Ada Lovelace", media=False)
    visitor_ctx = await new_context(browser, server, media=False)
    for context, signed in ((visitor_ctx, False), (client_ctx, True)):
        page = console.watch(await context.new_page())
        # (A visitor opening a reading is asked to log in first; a signed-in one gets the 404 page.)
        for path in ("/no-such-page", f"/readers/{uuid.uuid4()}", *(("/readings/not-a-uuid",) if signed else ())):
            response = await page.goto(path)
            assert response is not None and response.status == 404, path
            await expect(page.get_by_role("heading", name="We couldn't find that page")).to_be_visible()
            await expect(page.get_by_role("navigation", name="Main")).to_be_visible()
            nav = page.get_by_role("button", name="Log out") if signed else page.get_by_role("link", name="Log in")
            await expect(nav).to_be_visible()
    await shot(page, "not-found", doc=True)
    api = await client_ctx.request.get("/api/no-such-thing")
    assert api.status == 404 and (await api.json())["error"]["code"] == "not_found"
    assert console.violations() == []
    await client_ctx.close()
    await visitor_ctx.close()


async def test_every_invalid_price_is_flagged_the_inputs_stay_in_line_and_the_message_price_saves(
        browser: Browser, server: TestServer) -> None:
    console = Console()
    context, _ = await signed_in(browser, server, "reader", "Luna Hart", media=False)
    page = console.watch(await context.new_page())
    await page.goto("/dashboard")
    await page.get_by_label("Chat", exact=True).fill("abc")
    await page.get_by_label("Video", exact=True).fill("5000")
    await page.get_by_label("30 min").fill("1.2.3")
    await page.get_by_role("button", name="Save rates").click()
    form = page.locator("[data-rates-form]")
    await expect(form.locator('[data-error-for="chatCents"]')).to_have_text("Enter an amount like 2.50.")
    await expect(form.locator('[data-error-for="videoCents"]')).to_have_text("Enter at most $1,000.00.")
    await expect(form.locator('[data-error-for="flat30"]')).to_have_text("Enter an amount like 2.50.")
    await expect(form.locator('[data-error-for="audioCents"]')).to_be_hidden()
    await expect(page.get_by_label("Chat", exact=True)).to_be_focused()
    tops = [(await page.get_by_label(label, exact=True).bounding_box() or {})["y"]
            for label in ("Chat", "Audio", "Video")]
    assert max(tops) - min(tops) < 1, f"the per-minute inputs are out of line: {tops}"
    tops = [(await page.get_by_label(f"{m} min").bounding_box() or {})["y"] for m in (15, 30, 45, 60)]
    assert max(tops) - min(tops) < 1, f"the flat-price inputs are out of line: {tops}"

    await page.get_by_label("Chat", exact=True).fill("0.99")
    await page.get_by_label("Video", exact=True).fill("1.99")
    await page.get_by_label("30 min").fill("25")
    await page.get_by_label("Price per message").fill("3.50")
    await page.get_by_role("button", name="Save rates").click()
    await expect(form.locator("[data-form-status]")).to_have_text("Saved.")
    rates = await (await context.request.get("/api/webrtc/reader/rates")).json()
    assert (rates["chatCents"], rates["videoCents"], rates["flatCents"]["30"], rates["messageCents"]) == (
        99, 199, 2500, 350)
    await page.reload()
    await expect(page.get_by_label("Price per message")).to_have_value("3.50")
    assert console.violations() == []
    await context.close()


async def test_a_second_request_is_refused_in_words_with_a_link_to_the_open_one(
        browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    reader_ctx, reader = await _online_reader(browser, server)
    client = await funded_client(browser, server, console, database_url, media=False)
    body = await post(client.context, client.user, "/api/webrtc/client/request-session",
                      {"readerId": reader["id"], "sessionType": "chat", "expectedCents": 99}, expect=201)
    await client.page.goto("/")
    card = client.page.locator(f'[data-reader-id="{reader["id"]}"]')
    await card.get_by_role("button", name="Start audio").click()
    error = card.locator("[data-card-error]")
    await expect(error).to_have_text("You already have a reading waiting or in progress. Go to your reading")
    await error.get_by_role("link", name="Go to your reading").click()
    await client.page.wait_for_url(f"**/readings/{body['session']['id']}")
    await done(console, client)
    await reader_ctx.close()


async def test_every_time_reads_one_way_in_the_viewers_locale_and_time_zone(
        browser: Browser, server: TestServer, database_url: str) -> None:
    console = Console()
    reader_ctx, reader = await _online_reader(browser, server, message_cents=0)
    client = await funded_client(browser, server, console, database_url, media=False)
    await client.context.close()
    # The same client in a browser in Tokyo (UTC+9) that speaks US English.
    context = await browser.new_context(base_url=str(server.make_url("")).rstrip("/"), locale="en-US",
                                        timezone_id="Asia/Tokyo")
    login = await context.request.post("/api/auth/login", data={"email": client.user["email"], "password": PASSWORD})
    assert login.status == 200
    user = {**client.user, "csrfToken": (await login.json())["csrfToken"]}
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO rtc_sessions (client_id, reader_id, session_type, rate_cents, status, requested_at,"
            " ended_at, end_reason) VALUES ($1, $2, 'chat', 99, 'ended', $3, $3, 'ended_by_client')",
            client.user["id"], reader["id"], datetime(2026, 12, 1, 9, 15, tzinfo=UTC))
    finally:
        await conn.close()
    await post(context, user, "/api/messages", {"readerId": reader["id"], "body": "Hello there",
                                                "expectedCents": 0}, expect=201)
    page = console.watch(await context.new_page())
    await page.goto("/history")
    await expect(page.locator("tbody time").first).to_have_text("Dec 1, 2026, 6:15 PM")
    stamps = [await page.locator("tbody time").first.inner_text()]
    await page.goto("/wallet")
    await expect(page.locator("[data-transactions]")).to_contain_text("Funds added")
    stamps.append(await page.locator("[data-transactions] tr td").first.inner_text())
    await page.goto("/messages")
    await page.locator("[data-threads] a").first.click()
    await expect(page.locator("[data-messages]")).to_contain_text("Hello there")
    stamps.append(await page.locator("[data-messages] .meta").first.inner_text())
    assert all(ONE_FORMAT.match(t.strip()) for t in stamps), stamps
    assert console.violations() == []
    await context.close()
    await reader_ctx.close()


async def test_a_reader_chosen_before_logging_in_is_still_chosen_after(browser: Browser, server: TestServer) -> None:
    console = Console()
    reader_ctx, reader = await _online_reader(browser, server)
    client_ctx, client = await signed_in(browser, server, "client", "Ada Lovelace", media=False)
    await client_ctx.close()
    context = await new_context(browser, server, media=False)
    page = console.watch(await context.new_page())
    await page.goto("/")
    card = page.locator(f'[data-reader-id="{reader["id"]}"]')
    await card.get_by_role("link", name=re.compile("^Start video")).click()
    await page.get_by_label("Email").fill(client["email"])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    # Back at that reader's profile, the chosen kind of reading ready to press.
    await page.wait_for_url(re.compile(rf"/readers/{reader['id']}\?start=video$"))
    await expect(page.get_by_role("button", name=re.compile("^Start video reading with Luna Hart"))).to_be_focused()
    assert console.violations() == []
    await context.close()
    await reader_ctx.close()
