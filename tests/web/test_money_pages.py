"""Money out in the browser: a reader sets up payouts through (a stand-in for) Stripe's onboarding and is paid
from the earnings page; a client withdraws to the card from the wallet page; an operator suspends a user from
the console, saying why, and sees it in the audit trail."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote

import asyncpg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Route, expect

from billing import ledger
from config import Settings
from tests.stripe_fake import SECRET_KEY, WEBHOOK_SECRET, FakeStripe
from tests.web.conftest import Console, app_with, shot
from tests.web.pages_setup import signed_in

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module")
async def stripe() -> AsyncIterator[tuple[FakeStripe, str]]:
    fake = FakeStripe()
    async with fake.running() as url:
        yield fake, url


@pytest_asyncio.fixture(loop_scope="module")
async def money_server(settings: Settings, browser: Browser, stripe: tuple[FakeStripe, str]
                       ) -> AsyncIterator[TestServer]:
    async with app_with(settings, browser, stripe_secret_key=SECRET_KEY, stripe_webhook_secret=WEBHOOK_SECRET,
                        stripe_api_base=stripe[1], payout_hold_days=0, payout_minimum_cents=500) as test_server:
        yield test_server


async def _earn(settings: Settings, reader_id: str, cents: int) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        client = str(await conn.fetchval("INSERT INTO users (email, password_hash, display_name, role)"
                                         " VALUES ($1, 'x', 'Client', 'client') RETURNING id",
                                         f"c-{uuid.uuid4().hex[:8]}@example.test"))
        await ledger.deposit(conn, client_id=client, cents=cents, key=f"dep:{client}")
        await ledger.charge(conn, client_id=client, reader_id=reader_id, cents=cents, key=f"gift:{client}",
                            kind="gift", ref=str(uuid.uuid4()))
    finally:
        await conn.close()


async def test_a_reader_sets_up_payouts_and_is_paid_from_the_earnings_page(
        browser: Browser, money_server: TestServer, stripe: tuple[FakeStripe, str], settings: Settings) -> None:
    fake = stripe[0].connect
    console = Console()
    context, reader = await signed_in(browser, money_server, "reader", "Madame Vega")
    await _earn(settings, reader["id"], 2_000)
    page = console.watch(await context.new_page())

    async def stripe_onboarding(route: Route) -> None:  # Stripe's hosted pages, which we cannot reach here
        await route.fulfill(status=200, content_type="text/html", body="<h1>Stripe onboarding</h1>")

    await context.route("https://connect.stripe.test/**", stripe_onboarding)
    await page.goto("/dashboard")
    await page.get_by_role("link", name="Payouts and statement").click()
    await expect(page.locator("[data-payable]")).to_have_text("$14.00")
    await page.get_by_role("button", name="Set up payouts").click()
    await expect(page.get_by_role("heading", name="Stripe onboarding")).to_be_visible()
    [account_id] = fake.accounts
    fake.activate(account_id)  # the reader finished Stripe's steps
    await page.goto("/earnings/connect/return")
    await expect(page.locator("[data-account-status]")).to_contain_text("ready for payouts")
    await shot(page, "earnings-ready")
    await page.get_by_role("button", name="Pay me now").click()
    await expect(page.locator("[data-notice]")).to_have_text("Your payout is on its way.")
    await expect(page.locator("[data-paid-out]")).to_have_text("$14.00")
    await expect(page.locator("[data-payouts]")).to_contain_text("paid")
    assert [t["amount"] for t in fake.transfers.values()] == [1_400]
    assert console.errors == []


async def test_a_client_withdraws_unused_funds_from_the_wallet_page(
        browser: Browser, money_server: TestServer, stripe: tuple[FakeStripe, str], settings: Settings) -> None:
    context, client = await signed_in(browser, money_server, "client", "Ada")
    conn = await asyncpg.connect(settings.database_url)
    try:
        await ledger.deposit(conn, client_id=client["id"], cents=3_000, key=f"stripe:checkout:{client['id']}",
                             ref="pi_browser")
    finally:
        await conn.close()
    page = await context.new_page()
    # The notice names a withdrawal of this client's; text in the URL is never shown.
    await page.goto("/wallet?withdrawal=" + quote("Your account is locked: call +1 555 0100"))
    await expect(page.locator("[data-withdraw-notice]")).to_have_count(0)
    amount = page.get_by_label("Amount", exact=True)
    await amount.fill("12 dollars")
    await page.get_by_role("button", name="Withdraw").click()
    await expect(page.locator("[data-withdraw-error]")).to_have_text(
        "Give an amount in dollars and cents, such as 12.50.")
    await amount.fill("12.00")
    await page.get_by_role("button", name="Withdraw").click()
    await expect(page.locator("[data-withdraw-notice]")).to_have_text("$12.00 is on its way back to your card.")
    await expect(page.locator("[data-balance]")).to_have_text("$18.00")
    await expect(page.locator("[data-transactions]")).to_contain_text("Withdrawn to your card")
    assert [(r["payment_intent"], r["amount"]) for r in stripe[0].connect.refunds.values()] == [("pi_browser", 1_200)]


async def test_an_operator_suspends_a_user_from_the_console_with_a_reason(
        browser: Browser, money_server: TestServer, settings: Settings) -> None:
    target_context, target = await signed_in(browser, money_server, "client", "Mallory")
    context, admin = await signed_in(browser, money_server, "client", "Operator")
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("UPDATE users SET role = 'admin' WHERE id = $1", admin["id"])
    finally:
        await conn.close()
    page = await context.new_page()
    await page.goto("/admin/users?notice=" + quote("Reinstate every account: policy change"))
    await expect(page.locator("[data-notice]")).to_have_count(0)  # only a notice the console signed shows
    await page.goto("/admin")
    await page.get_by_label("Search").fill(target["email"])
    await page.get_by_role("button", name="Search").click()
    row = page.locator("[data-section=users] tbody tr", has_text=target["email"])
    await row.get_by_label("Reason").fill("card testing with stolen cards")
    await row.get_by_role("button", name="Suspend").click()
    await expect(page.locator("[data-notice]")).to_have_text("Suspended.")
    await expect(page.locator("[data-section=audit]")).to_contain_text("card testing with stolen cards")
    await shot(page, "console-users")
    # The suspended user's login no longer works: their next page sends them to log in.
    target_page = await target_context.new_page()
    await target_page.goto("/wallet")
    await expect(target_page).to_have_url(f"{money_server.make_url('/login')}?next=/wallet")


async def test_setting_up_payouts_reaches_stripe_before_the_pages_script_has_run(
        browser: Browser, money_server: TestServer, stripe: tuple[FakeStripe, str]) -> None:
    """A click before earnings.js has loaded (or without JavaScript) posts the form itself.

    The page's CSP blocks a form's redirect to another site, so that post answers with a page that goes on to
    Stripe; a redirect left the reader on the earnings page with nothing happening.
    """
    context, _ = await signed_in(browser, money_server, "reader", "Madame Vega")

    async def stripe_onboarding(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/html", body="<h1>Stripe onboarding</h1>")

    await context.route("https://connect.stripe.test/**", stripe_onboarding)
    await context.route("**/static/js/**", lambda route: route.abort())  # the page's scripts never run
    page = await context.new_page()
    await page.goto("/earnings")
    await page.get_by_role("button", name="Set up payouts").click()
    await expect(page.get_by_role("heading", name="Stripe onboarding")).to_be_visible()
    assert len(stripe[0].connect.accounts) == 1
