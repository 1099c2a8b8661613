"""A real Chromium viewer on an edge node: two ``soulseer serve`` nodes sharing PostgreSQL and Redis, the stream
published (aiortc) to its home, the browser's tab on the other node, whose relay pulls the stream once and serves
the tab's media; the page decodes it. Then the origin's node is killed: the edge becomes the stream's origin, the
reader publishes there, and the tab, with its one WebSocket and its one peer connection, decodes again."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis.asyncio as redis
from playwright.async_api import Browser, WebSocket, expect

from tests.api.cluster.processes import cluster_view, free_port, node_env, ready, serve
from tests.api.stream_sockets import SignalingClient
from tests.reading_steps import quick_user, wait_for
from tests.relay.endpoints import Endpoint
from tests.web.conftest import Console
from tests.web.media_stats import rtp_counter
from tests.web.pages_setup import signed_in
from tests.web.reading_pages import rising

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

STREAM_FRAMES = rtp_counter("soulseerStream", "inbound", "video", "framesDecoded")


async def test_a_chromium_viewer_on_an_edge_node_decodes_the_stream_and_keeps_it_when_the_origin_dies(
        browser: Browser, database_url: str, tmp_path: Path, redis_server_url: str, redis_prefix: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    ports = [free_port() for _ in range(2)]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    processes: list[subprocess.Popen[bytes]] = []
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(pool.close)
        nodes = stack.enter_context(contextlib.ExitStack())
        for index, port in enumerate(ports):
            env = node_env(database_url, port, REDIS_URL=redis_server_url, SOULSEER_REDIS_PREFIX=redis_prefix,
                           SOULSEER_NODE_NAME=f"node-{index + 1}")
            processes.append(nodes.enter_context(serve(env, tmp_path / f"node-{index + 1}.log")))
        for base in bases:
            await ready(base)
        admin = await quick_user(pool, "admin")
        reader = await quick_user(pool, "reader", "Luna Hart")

        async def two() -> bool:
            return len((await cluster_view(bases[0], admin))["nodes"]) == 2

        await wait_for(two, timeout=20, interval=0.2)
        node_ids = [(await cluster_view(base, admin))["nodeId"] for base in bases]
        http = await stack.enter_async_context(aiohttp.ClientSession(base_url=bases[0]))
        resp = await http.post("/api/streams", json={"title": "Full moon tarot"}, headers=reader.headers)
        stream_id = (await resp.json())["stream"]["id"]
        store = redis.Redis.from_url(redis_server_url)
        stack.push_async_callback(store.aclose)
        home = node_ids.index((await store.get(f"{redis_prefix}room:stream:{stream_id}")).decode())
        edge = 1 - home
        on_home = await stack.enter_async_context(aiohttp.ClientSession(base_url=bases[home]))
        reader_ws = await publish(on_home, reader.headers, stream_id, stack)

        console = Console()
        context, _ = await signed_in(browser, None, "client", "Ada Lovelace", base_url=bases[edge])
        stack.push_async_callback(context.close)
        page = console.watch(await context.new_page())
        await page.goto(f"/streams/{stream_id}")
        await expect(page.locator("[data-connection]")).to_have_text("Connected", timeout=30_000)
        await rising(page, STREAM_FRAMES, above=5, timeout=30)
        await reader_ws.wait("stream-state", lambda m: m["viewerCount"] == 1, timeout=15)

        async def served_by_the_edge() -> bool:
            loads = {n["id"]: n["load"] for n in (await cluster_view(bases[0], admin))["nodes"]}
            # The edge's relay holds the tab; the origin's holds one viewer, the edge's pull.
            return bool(loads[node_ids[edge]]["viewers"] == 1 and loads[node_ids[home]]["viewers"] == 1)

        await wait_for(served_by_the_edge, timeout=15, interval=0.25)

        # The origin dies. The tab's socket is on the edge, and so is its media: its seat is carried over to the
        # stream's new home, the edge itself, and the reader (its tab joins again) publishes there; the edge hands
        # its pull over to the reader's connection, and Chromium decodes on, with nothing new to set up.
        sockets: list[WebSocket] = []

        def opened(socket: WebSocket) -> None:
            sockets.append(socket)

        page.on("websocket", opened)
        await page.evaluate("window.peerBefore = window.soulseerStream._pc")
        processes[home].kill()
        processes[home].wait(30)
        decoded = int(await page.evaluate(STREAM_FRAMES))  # and the few frames the dead origin had on the way
        on_edge = await stack.enter_async_context(aiohttp.ClientSession(base_url=bases[edge]))
        reader_ws = await publish(on_edge, reader.headers, stream_id, stack)
        assert (await store.get(f"{redis_prefix}room:stream:{stream_id}")).decode() == node_ids[edge]
        await rising(page, STREAM_FRAMES, above=decoded + 10, timeout=30)
        assert sockets == [], "the tab opened a new WebSocket"
        assert await page.evaluate("window.peerBefore === window.soulseerStream._pc"), "the tab made a new peer"
        await expect(page.locator("[data-connection]")).to_have_text("Connected")
        await reader_ws.wait("stream-state", lambda m: m["viewerCount"] == 1 and m["status"] == "live", timeout=15)
        assert not console.violations(), console.violations()


async def publish(session: aiohttp.ClientSession, headers: dict[str, str], stream_id: str,
                  stack: contextlib.AsyncExitStack) -> SignalingClient:
    """The reader's tab (an aiortc publisher) on ``session``'s node, joined and publishing."""
    reader_ws = SignalingClient(await session.ws_connect("/ws", headers=headers))
    stack.push_async_callback(reader_ws.close)
    await reader_ws.join_stream(stream_id)
    publisher = Endpoint("publisher", send=("audio", "video"), receive=(), data_channel=False)
    stack.push_async_callback(publisher.close)
    await reader_ws.send({"type": "offer", "sdp": await publisher.offer()})
    await publisher.accept((await reader_ws.wait("answer", timeout=20))["sdp"])
    return reader_ws
