"""Steps the browser tests share: accounts made over the API and logged in inside a browser context."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext

from tests.web.conftest import new_context

PASSWORD = "correct horse battery"


async def signed_in(browser: Browser, server: TestServer | None, role: str, name: str, *, media: bool = True,
                    viewport: dict[str, int] | None = None,
                    base_url: str | None = None) -> tuple[BrowserContext, dict[str, Any]]:
    """A new browser context holding the cookie login of a new account."""
    context = await new_context(browser, server, media=media, viewport=viewport, base_url=base_url)
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.test"
    response = await context.request.post("/api/auth/register", data={
        "email": email, "password": PASSWORD, "displayName": name, "role": role})
    assert response.status == 201, await response.text()
    response = await context.request.post("/api/auth/login", data={"email": email, "password": PASSWORD})
    assert response.status == 200, await response.text()
    body = await response.json()
    return context, {**body["user"], "csrfToken": body["csrfToken"]}


async def post(context: BrowserContext, user: dict[str, Any], path: str, data: dict[str, Any] | None = None,
               expect: int = 200) -> dict[str, Any]:
    """A JSON POST as the context's cookie login (with its CSRF token), checked for the expected status."""
    response = await context.request.post(path, data=data or {}, headers={"X-CSRF-Token": user["csrfToken"]})
    assert response.status == expect, f"{path}: {response.status} {await response.text()}"
    return await response.json()
