"""Every page, for every role, at phone (390 px) and desktop (1280 px) width: nothing wider than the screen, and no
serious or critical accessibility violation (axe-core)."""

from __future__ import annotations

import contextlib

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

from billing import ledger
from tests.reading_steps import deposit
from tests.web.accessibility import axe_violations, horizontal_overflow
from tests.web.conftest import DESKTOP, PHONE, Console, new_context, shot
from tests.web.pages_setup import post, signed_in

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


async def _settled(page: Page) -> None:
    """The page has drawn what it loads after the first paint (bounded: a page that polls is never idle)."""
    with contextlib.suppress(PlaywrightTimeout):
        await page.wait_for_load_state("networkidle", timeout=3000)


async def _check(page: Page, path: str, who: str, problems: list[str]) -> None:
    for viewport in (DESKTOP, PHONE):
        await page.set_viewport_size(viewport)
        await page.goto(path)
        await _settled(page)
        width = viewport["width"]
        await shot(page, f"every-page-{who}-{path.strip('/').replace('/', '-') or 'home'}-{width}")
        overflow = await horizontal_overflow(page)
        if overflow is not None:
            problems.append(f"{who} {path} at {width} px is {overflow['scrollWidth']} px wide: {overflow['wide']};"
                            f" flush with an edge: {overflow['flush']}")
        for violation in await axe_violations(page):
            problems.append(f"{who} {path} at {width} px: {violation['impact']} {violation['id']} "
                            f"({violation['help']}): {violation['nodes']}")


async def _admin(browser: Browser, server: TestServer, database_url: str) -> BrowserContext:
    context, user = await signed_in(browser, server, "client", "Grace Admin", media=False)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE users SET role = 'admin' WHERE id = $1", user["id"])
    finally:
        await conn.close()
    return context


async def _ended_reading(database_url: str, client_id: str, reader_id: str) -> str:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        reading = str(await pool.fetchval(
            "INSERT INTO rtc_sessions (client_id, reader_id, session_type, rate_cents, status, billable_seconds,"
            " charged_cents, end_reason, started_at, ended_at) VALUES ($1, $2, 'video', 199, 'ended', 95, 398,"
            " 'ended_by_client', now() - interval '2 minutes', now()) RETURNING id", client_id, reader_id))
        await conn_messages(pool, reading, client_id, reader_id)
        await deposit(pool, client_id, 5000)
        for minute in range(2):
            await ledger.charge(pool, client_id=client_id, reader_id=reader_id, cents=199,
                                key=f"test:{reading}:{minute}", kind="reading_minute", ref=reading)
    finally:
        await pool.close()
    return reading


async def conn_messages(pool: asyncpg.Pool, reading: str, client_id: str, reader_id: str) -> None:
    for sender, body in ((client_id, "Hello, thank you for taking my call."), (reader_id, "Welcome! Let's begin.")):
        await pool.execute("INSERT INTO reading_messages (session_id, sender_id, body) VALUES ($1, $2, $3)",
                           reading, sender, body)


async def test_every_page_fits_a_phone_and_a_desktop_and_passes_axe(browser: Browser, server: TestServer,
                                                                    database_url: str) -> None:
    console = Console()
    reader_ctx, reader = await signed_in(browser, server, "reader", "Luna Hart", media=False)
    await post(reader_ctx, reader, "/api/webrtc/reader/rates",
               {"chatCents": 99, "audioCents": 149, "videoCents": 199, "messageCents": 0,
                "flatCents": {"15": 1500, "30": 2500, "45": 3500, "60": 4500}})
    await post(reader_ctx, reader, "/api/webrtc/reader/profile",
               {"specialties": "Tarot, Astrology", "bio": "Twenty years of gentle, practical tarot."})
    await post(reader_ctx, reader, "/api/webrtc/reader/availability", {"status": "online"})
    client_ctx, client = await signed_in(browser, server, "client", "Ada Lovelace", media=False)
    ended = await _ended_reading(database_url, client["id"], reader["id"])
    thread = await post(client_ctx, client, "/api/messages",
                        {"readerId": reader["id"], "body": "Is June a good month to move?", "expectedCents": 0},
                        expect=201)
    waiting = await post(client_ctx, client, "/api/webrtc/client/request-session",
                         {"readerId": reader["id"], "sessionType": "video", "expectedCents": 199}, expect=201)
    stream = await post(reader_ctx, reader, "/api/streams", {"title": "Full moon tarot"}, expect=201)
    admin_ctx = await _admin(browser, server, database_url)
    visitor_ctx = await new_context(browser, server, media=False)
    thread_id = thread["message"]["threadId"]

    pages: dict[str, tuple[BrowserContext, list[str]]] = {
        "visitor": (visitor_ctx, ["/", "/login", "/register", "/register?role=reader", "/forgot-password",
                                  f"/readers/{reader['id']}", "/no-such-page"]),
        "client": (client_ctx, ["/", "/wallet", "/history", "/notifications", "/messages", f"/messages/{thread_id}",
                                f"/readings/{ended}", f"/readings/{waiting['session']['id']}",
                                f"/streams/{stream['stream']['id']}", f"/readers/{reader['id']}",
                                f"/readers/{reader['id']}/book", "/upcoming", "/account", "/no-such-page"]),
        "reader": (reader_ctx, ["/dashboard", "/live", "/earnings", "/history", "/notifications", "/messages",
                                f"/messages/{thread_id}", f"/readings/{ended}",
                                f"/readings/{waiting['session']['id']}", "/schedule", "/upcoming", "/account",
                                f"/readers/{reader['id']}"]),
        "admin": (admin_ctx, ["/admin/users", "/admin/readings", "/admin/ledger", "/admin/payouts"]),
    }
    problems: list[str] = []
    for who, (context, paths) in pages.items():
        page = console.watch(await context.new_page())
        for path in paths:
            await _check(page, path, who, problems)
        await page.close()
    assert problems == [], "\n".join(problems)
    assert console.violations() == []
    for context in (reader_ctx, client_ctx, admin_ctx, visitor_ctx):
        await context.close()


