"""The wallet in the browser: add funds through (a local stand-in for) Stripe Checkout, get credited by the
signed webhook, see the new balance and the transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from config import Settings
from tests.reading_steps import deposit
from tests.stripe_fake import SECRET_KEY, WEBHOOK_SECRET, FakeStripe, event, signed
from tests.web.conftest import Console, app_with, shot
from tests.web.pages_setup import signed_in

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module")
async def stripe() -> AsyncIterator[FakeStripe]:
    fake = FakeStripe()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest_asyncio.fixture(loop_scope="module")
async def paying_server(settings: Settings, browser: Browser, stripe: FakeStripe) -> AsyncIterator[TestServer]:
    async with app_with(settings, browser, stripe_secret_key=SECRET_KEY, stripe_webhook_secret=WEBHOOK_SECRET,
                        stripe_api_base=stripe.api_base) as test_server:
        yield test_server


async def test_adding_funds_through_checkout_credits_the_wallet(browser: Browser, paying_server: TestServer,
                                                                stripe: FakeStripe, database_url: str) -> None:
    console = Console()
    context, user = await signed_in(browser, paying_server, "client", "Ada Lovelace")
    page = console.watch(await context.new_page())
    await page.goto("/wallet")
    await expect(page.locator("[data-balance]")).to_have_text("$0.00")
    await expect(page.locator("[data-transactions]")).to_contain_text("No transactions yet.")

    await page.get_by_role("radio", name="Other").check()
    await page.get_by_label("Other amount").fill("2")
    await page.get_by_role("button", name="Continue to secure checkout").click()
    await expect(page.locator('[data-error-for="amountCents"]')).to_have_text(
        "Choose an amount between $5.00 and $500.00.")
    await shot(page, "wallet-amount-error")

    await page.get_by_label("Other amount").fill("20.50")
    await page.get_by_role("button", name="Continue to secure checkout").click()
    await expect(page.get_by_role("heading", name="Fake Checkout")).to_be_visible()
    [session] = stripe.sessions.values()
    assert session["amount_total"] == 2050 and session["client_reference_id"] == user["id"]

    # The browser comes back before Stripe's webhook: the notice waits for this checkout, and says nothing of the
    # deposit made minutes ago (which once was announced as if it were this one).
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        await deposit(pool, user["id"], 500)
    finally:
        await pool.close()
    # (success_url names the configured public URL; this test's app listens on a port of its own.)
    back = urlsplit(session["success_url"])
    assert back.path == "/wallet"
    await page.goto(f"{back.path}?{back.query}")
    notice = page.locator("[data-return-notice]")
    await expect(notice).to_contain_text("Your payment is being confirmed by Stripe")
    await expect(page.locator("[data-transactions]")).to_contain_text("+$5.00")
    await expect(notice).not_to_contain_text("was added")

    # Stripe sends the paid event to the webhook; the page waiting on the browser sees it credited.
    payload, signature = signed(event("checkout.session.completed", {
        **session, "payment_status": "paid", "payment_intent": "pi_test_1"}))
    response = await context.request.post("/api/webrtc/webhook", data=payload, headers={
        "Stripe-Signature": signature, "Content-Type": "application/json"})
    assert response.status == 200, await response.text()
    await expect(notice).to_have_text("Thank you. $20.50 was added to your wallet.")
    await expect(page.locator("[data-balance]")).to_have_text("$25.50")
    await expect(page.locator("[data-transactions]")).to_contain_text("Funds added")
    await expect(page.locator("[data-transactions]")).to_contain_text("+$20.50")
    await expect(page.get_by_role("link", name="Wallet")).to_contain_text("$25.50")
    # Opened again later (or with another checkout's id), the page announces nothing new.
    await page.goto("/wallet?checkout=success&session_id=cs_test_someone_else")
    await expect(notice).to_have_text(
        "We couldn't find that checkout. Your balance and transactions below are up to date.")
    await shot(page, "wallet", doc=True)
    assert console.violations() == []
