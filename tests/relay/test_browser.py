"""A real browser publishes through the relay to another real browser, which decodes it.

Headless Chromium (Playwright, fake camera and microphone) on one page publishes a stream; a second
page watches it. The pages and the offer/answer endpoint are a minimal aiohttp server inside this
test, not product code. Every RTCPeerConnection has ``iceServers: []``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from relay import Relay, RelayError
from tests.chromium import CHROMIUM, CHROMIUM_ARGS

PAGE = """<!doctype html>
<html><body><script type="module">
const params = new URLSearchParams(location.search);
const role = params.get("role");
const pc = new RTCPeerConnection({iceServers: []});
window.pc = pc;
if (role === "publish") {
  const media = await navigator.mediaDevices.getUserMedia({audio: true, video: {width: 320, height: 240}});
  for (const track of media.getTracks()) pc.addTransceiver(track, {direction: "sendonly"});
} else {
  pc.addTransceiver("audio", {direction: "recvonly"});
  pc.addTransceiver("video", {direction: "recvonly"});
}
pc.createDataChannel("chat");
await pc.setLocalDescription(await pc.createOffer());
await new Promise(resolve => {
  if (pc.iceGatheringState === "complete") resolve();
  pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
});
const reply = await fetch("/offer", {method: "POST", headers: {"content-type": "application/json"},
  body: JSON.stringify({role, id: params.get("id"), sdp: pc.localDescription.sdp})});
const {sdp} = await reply.json();
await pc.setRemoteDescription({type: "answer", sdp});
window.inboundVideo = async () => {
  const stats = await pc.getStats();
  for (const report of stats.values()) {
    if (report.type === "inbound-rtp" && report.kind === "video") {
      return {framesDecoded: report.framesDecoded || 0, codec: report.codecId || ""};
    }
  }
  return {framesDecoded: 0, codec: ""};
};
window.ready = true;
</script></body></html>
"""


@pytest.fixture
async def server(relay: Relay) -> AsyncIterator[str]:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            if body["role"] == "publish":
                answer = await relay.publish_stream("live", body["id"], body["sdp"])
            else:
                answer = await relay.watch_stream("live", body["id"], body["sdp"])
        except RelayError as exc:
            return web.json_response({"error": exc.code}, status=409)
        return web.json_response({"sdp": answer})

    app = web.Application()
    app.add_routes([web.get("/", page), web.post("/offer", offer)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_chromium_publishes_through_the_relay_to_chromium_which_decodes(
    relay: Relay, server: str
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            publisher = await browser.new_page()
            await publisher.goto(f"{server}/?role=publish&id=reader")
            await publisher.wait_for_function("window.ready === true", timeout=20000)
            viewer = await browser.new_page()
            await viewer.goto(f"{server}/?role=watch&id=client")
            await viewer.wait_for_function("window.ready === true", timeout=20000)

            async def decoded() -> Any:
                return await viewer.evaluate("window.inboundVideo()")

            async def frames_at_least(n: int) -> int:
                while (stats := await decoded())["framesDecoded"] < n:
                    await asyncio.sleep(0.2)
                return int(stats["framesDecoded"])

            first = await asyncio.wait_for(frames_at_least(1), 20)
            later = await asyncio.wait_for(frames_at_least(first + 30), 20)
            assert later > first
            publisher_state = await publisher.evaluate("window.pc.connectionState")
            relay_states = [relay.participant_state("reader"), relay.participant_state("client")]
        finally:
            await browser.close()
    assert publisher_state == "connected"
    video = next(s for s in relay.sources("live") if s.kind == "video")
    assert video.codec == "VP8" and video.frames_in > 30
    assert relay_states == ["connected", "connected"]
