"""Browser fixtures: one headless Debian Chromium per test module, and the app on a real port per test.

The browser and the app share the module's event loop (pytest-asyncio ``loop_scope="module"``), so tests in
these modules are marked ``@pytest.mark.asyncio(loop_scope="module")``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from api.app import create_app
from config import Settings
from tests.chromium import CHROMIUM
from tests.chromium import CHROMIUM_ARGS as BASE_CHROMIUM_ARGS

CHROMIUM_ARGS = [*BASE_CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "web"
DOC_SHOTS = ROOT / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}


@asynccontextmanager
async def launched(args: list[str]) -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, started with ``args`` (the test is skipped where it is not installed)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launched(CHROMIUM_ARGS) as chromium:
        yield chromium


async def start_app(settings: Settings) -> TestServer:
    test_server = TestServer(create_app(settings), host="127.0.0.1")
    await test_server.start_server()
    return test_server


async def stop_app(test_server: TestServer, browser: Browser) -> None:
    # The test's browser contexts go first (even when the test failed half-way), so no page keeps
    # a signaling socket open while the app shuts down.
    for context in list(browser.contexts):
        await context.close()
    await test_server.close()


@asynccontextmanager
async def app_with(settings: Settings, browser: Browser, **changes: object) -> AsyncIterator[TestServer]:
    """The app started with ``settings`` changed as given (none: as they are), stopped after the test's pages."""
    test_server = await start_app(replace(settings, **changes) if changes else settings)
    try:
        yield test_server
    finally:
        await stop_app(test_server, browser)


@pytest_asyncio.fixture(loop_scope="module")
async def server(settings: Settings, browser: Browser) -> AsyncIterator[TestServer]:
    """The whole app on 127.0.0.1 at a free port; ``server.make_url("/")`` is its address."""
    async with app_with(settings, browser) as test_server:
        yield test_server


@pytest_asyncio.fixture(loop_scope="module")
async def quick_expiry_server(settings: Settings, browser: Browser) -> AsyncIterator[TestServer]:
    """The app with reading requests that expire after 5 seconds."""
    async with app_with(settings, browser, request_expiry_seconds=5) as test_server:
        yield test_server


class Console:
    """Every console error and CSP violation a page reports, so a test can assert there were none."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        return page

    def violations(self) -> list[str]:
        return [e for e in self.errors if "Content Security Policy" in e or e.startswith("pageerror")]


async def new_context(browser: Browser, server: TestServer | None, *, media: bool = True,
                      viewport: dict[str, int] | None = None, base_url: str | None = None) -> BrowserContext:
    """A context on ``base_url`` (default: the test server's address)."""
    assert base_url is not None or server is not None
    context = await browser.new_context(
        base_url=base_url or str(server.make_url("")).rstrip("/"),  # type: ignore[union-attr]
        viewport=viewport or DESKTOP,
        permissions=["camera", "microphone"] if media else [],
    )
    context.set_default_timeout(15_000)
    return context


async def shot(page: Page, name: str, *, doc: bool = False, full_page: bool = True) -> Path:
    """Save a screenshot under test-artifacts/web; with SOULSEER_UPDATE_SCREENSHOTS=1, curated ones also
    go to docs/screenshots (referenced by the README), at the page's width and at phone width (``-phone``)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    if doc and os.environ.get("SOULSEER_UPDATE_SCREENSHOTS") == "1":
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_SHOTS / path.name)
        viewport = page.viewport_size
        if viewport is not None and viewport["width"] != PHONE["width"] and not name.endswith("-phone"):
            await page.set_viewport_size(PHONE)
            await page.screenshot(path=str(DOC_SHOTS / f"{path.stem}-phone.png"), full_page=full_page)
            await page.set_viewport_size(viewport)
    return path
