"""A video reading in two real Chromium pages against ``soulseer serve --nodes 2``: two node processes sharing the
port, so each page's requests and signaling socket land on whichever node the kernel picks, and the reading runs
on its home node; both pages decode each other's video."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.api.cluster.processes import free_port, node_env, ready, serve
from tests.web.conftest import Console
from tests.web.reading_pages import (
    FRAMES_DECODED,
    done,
    end_reading,
    funded_client,
    ready_reader,
    request_and_accept,
    rising,
    send_chat,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


async def test_a_video_reading_on_two_nodes_sharing_the_port(browser: Browser, database_url: str,
                                                            tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = node_env(database_url, port, SOULSEER_DATA_DIR=str(tmp_path / "data"))
    with serve(env, tmp_path / "serve.log", "--nodes", "2"):
        await ready(base)
        console = Console()
        reader = await ready_reader(browser, None, console, base_url=base)
        client = await funded_client(browser, None, console, database_url, cents=2000, base_url=base)
        await request_and_accept(client, reader, "video")
        for party in (client, reader):
            await expect(party.page.locator("[data-connection]")).to_have_text("Connected", timeout=30_000)
        await rising(client.page, FRAMES_DECODED, above=5)
        await rising(reader.page, FRAMES_DECODED, above=5)
        await send_chat(client.page, reader.page, "Hello across the cluster.")
        await send_chat(reader.page, client.page, "Hello back.")
        await expect(client.page.locator("[data-charged]")).to_have_text("$1.99")
        await end_reading(client, client, reader)
        await done(console, client, reader)
    log = (tmp_path / "serve.log").read_text()
    assert "node-1" in log and "node-2" in log
