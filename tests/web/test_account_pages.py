"""Accounts by e-mail in the browser: forgot the password, open the link from the mail folder (what a developer
does with nothing configured), choose a new one, log in with it; the address verified from its link."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from api.core.keys import SETTINGS
from tests.mailbox import body_of, wait_for_mails
from tests.web.conftest import Console, new_context, shot
from tests.web.pages_setup import PASSWORD, signed_in

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

NEW_PASSWORD = "moonlight over the harbour"


def link_in(message: object, path: str) -> str:
    text = body_of(message)  # type: ignore[arg-type]
    start = text.index("http")
    link = text[start:].split()[0]
    assert path in link, text
    return link[link.index(path):]


async def test_a_forgotten_password_is_reset_through_the_mailed_link(browser: Browser, server: TestServer) -> None:
    console = Console()
    context, user = await signed_in(browser, server, "client", "Ada Lovelace")
    await context.close()
    mail_folder = server.app[SETTINGS].data_dir / "mail"
    [verification] = [m for m in await wait_for_mails(mail_folder, 1) if m["To"] == user["email"]]

    context = await new_context(browser, server, media=False)
    page = console.watch(await context.new_page())
    await page.goto(link_in(verification, "/verify-email"))
    await expect(page.get_by_role("heading", name="Address confirmed")).to_be_visible()

    await page.goto("/login")
    await page.get_by_role("link", name="Forgot your password?").click()
    await page.get_by_label("Email").fill(user["email"])
    await page.get_by_role("button", name="Mail me a link").click()
    await expect(page.locator("[data-done]")).to_contain_text("If an account has this address, a link is on its way")
    reset = next(m for m in await wait_for_mails(mail_folder, 2) if m["Subject"] == "Reset your SoulSeer password")
    reset_link = link_in(reset, "/reset-password")
    await page.goto(reset_link)
    await page.get_by_role("textbox", name="New password").fill("short")
    await page.get_by_role("button", name="Set the new password").click()
    await expect(page.locator('[data-error-for="password"]')).to_contain_text("8 to 200 characters")
    await page.get_by_role("textbox", name="New password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Set the new password").click()
    await expect(page.locator("[data-done]")).to_contain_text("Your password is changed")
    await shot(page, "password-reset-done")

    # The link works once (opened again in a new tab).
    again = console.watch(await context.new_page())
    await again.goto(reset_link)
    await again.get_by_role("textbox", name="New password").fill("another passphrase here")
    await again.get_by_role("button", name="Set the new password").click()
    await expect(again.locator("[data-form-error]")).to_contain_text("This link is not valid any more")
    await again.close()

    await page.goto("/login")
    await page.get_by_label("Email").fill(user["email"])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("[data-form-error]")).to_contain_text("Wrong email or password")
    await page.get_by_label("Password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(f"{str(server.make_url('')).rstrip('/')}/")
    await page.goto("/account")
    await expect(page.locator("main")).to_contain_text("verified")
    assert console.violations() == []
