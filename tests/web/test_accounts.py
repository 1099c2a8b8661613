"""Registering, logging in and out in a real browser; protected pages; escaping; the CSP holds."""

from __future__ import annotations

import uuid

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from tests.web.conftest import PHONE, Console, new_context, shot

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

PASSWORD = "correct horse battery"


def _email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.test"


async def test_a_client_registers_lands_on_the_readers_page_logs_out_and_back_in(browser: Browser,
                                                                                 server: TestServer) -> None:
    context = await new_context(browser, server)
    console = Console()
    page = console.watch(await context.new_page())
    email = _email("ada")

    await page.goto("/register")
    await shot(page, "register", doc=True)
    await page.get_by_label("Display name").fill("Ada Client")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page).to_have_url(str(server.make_url("/")))
    await expect(page.get_by_role("link", name="Wallet")).to_contain_text("$0.00")

    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(str(server.make_url("/login")))
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill("wrong password!")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")
    await shot(page, "login-error")

    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("link", name="Wallet")).to_be_visible()
    assert console.violations() == []
    await context.close()


async def test_a_field_error_from_the_api_is_shown_next_to_its_field(browser: Browser, server: TestServer) -> None:
    context = await new_context(browser, server, viewport=PHONE)
    page = await context.new_page()
    await page.goto("/register")
    await page.get_by_label("Display name").fill("Short Password")
    await page.get_by_label("Email").fill(_email("short"))
    await page.get_by_label("Password").fill("short")
    await page.get_by_role("button", name="Create account").click()
    error = page.locator('[data-error-for="password"]')
    await expect(error).to_contain_text("password must be 8 to 200 characters", ignore_case=True)
    await expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Password")).to_be_focused()
    await shot(page, "register-field-error-phone")
    await context.close()


async def test_a_protected_page_sends_a_visitor_to_log_in_and_back(browser: Browser, server: TestServer) -> None:
    context = await new_context(browser, server)
    page = await context.new_page()
    email = _email("back")
    response = await page.request.post("/api/auth/register", data={
        "email": email, "password": PASSWORD, "displayName": "Back Again", "role": "client"})
    assert response.status == 201

    await page.goto("/wallet")
    await expect(page).to_have_url(str(server.make_url("/login?next=/wallet")))
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(str(server.make_url("/wallet")))
    await context.close()


async def test_a_display_name_with_markup_renders_as_text(browser: Browser, server: TestServer) -> None:
    context = await new_context(browser, server)
    console = Console()
    page = console.watch(await context.new_page())
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    name = '<script>alert("x")</script><img src=x onerror=alert(2)>'
    await page.goto("/register?role=reader")
    await page.get_by_label("Display name").fill(name)
    await page.get_by_label("Email").fill(_email("xss"))
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page).to_have_url(str(server.make_url("/dashboard")))
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Welcome, {name}")
    assert await page.locator("main script, main img").count() == 0
    assert dialogs == []
    await context.close()
