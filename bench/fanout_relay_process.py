"""The benchmark's relay process: SoulSeer's relay, or aiortc's MediaRelay as the baseline.

A tiny HTTP control server on 127.0.0.1 (POST /publish, POST /watch, GET /stats) exchanges SDP and
reports this process's CPU time (``getrusage``, all threads), so the relay is measured alone.

``passthrough`` is :class:`relay.Relay` (encoded frames forwarded, no codec); ``queued`` is the same
relay with ``direct_send=False`` (each subscriber sender runs aiortc's own loop and send chain, as the
relay did before ``relay/outlet.py``). ``mediarelay`` is
aiortc's documented way to fan out one track: ``MediaRelay`` decodes the publisher once and every
viewer's sender re-encodes (``buffered=False``: stale frames are dropped, not queued).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack
from prometheus_client import CollectorRegistry

from bench.fanout_peers import cpu_seconds
from relay import Relay, RelayError


class PassthroughControl:
    """Control endpoints over SoulSeer's relay."""

    def __init__(self, direct_send: bool = True, wire: str | None = None, overload: bool = False) -> None:
        # With ``overload``, the defences of soulseer serve's defaults (relay/overload.py) are on.
        self.relay = Relay(ice_servers=[], registry=CollectorRegistry(), max_participants=5000,
                           max_viewers_per_stream=5000, stats_interval=0, direct_send=direct_send, wire=wire,
                           max_loop_lag=0.03 if overload else None, shed_lag=0.06 if overload else None)

    async def publish(self, sdp: str) -> str:
        return await self.relay.publish_stream("bench", "publisher", sdp)

    async def watch(self, viewer: str, sdp: str) -> str:
        return await self.relay.watch_stream("bench", viewer, sdp)

    async def pull(self, edge: str, sdp: str) -> str:
        """Another relay process pulling the stream (bench/cluster_fanout.py's edge)."""
        return await self.relay.watch_stream("bench", edge, sdp, pull=True)

    async def pull_from(self, origin_url: str) -> None:
        """Be an edge: pull the stream once from the relay process at ``origin_url`` (relay/upstream.py)."""
        import aiohttp

        offer = await self.relay.pull_stream("bench", "edge")
        async with aiohttp.ClientSession() as http, \
                http.post(f"{origin_url}/pull", json={"id": "edge", "sdp": offer}) as response:
            await self.relay.accept_pull("bench", (await response.json())["sdp"])

    def stats(self) -> dict[str, Any]:
        forwarded = {kind: vars(c) for kind, c in self.relay.metrics.forwarded.items()}
        sources = self.relay.sources("bench")
        sent = sum(s.keyframe_requests_sent for s in sources)
        video = [s for s in sources if s.kind == "video"]
        overflows = sum(t.overflows for s in video for t in s.subscribers)
        census = self.relay.census()
        return {"forwarded": forwarded, "keyframes_sent": sent, "overflows": overflows,
                "video_shed": census.video_shed, "loop_lag": census.loop_lag,
                "frames_in": sum(s.frames_in for s in video), "stale": sum(s.stale_frames for s in video)}

    async def close(self) -> None:
        await self.relay.close()


class MediaRelayControl:
    """Control endpoints over aiortc's MediaRelay (decode once, encode per viewer)."""

    def __init__(self) -> None:
        self.media_relay = MediaRelay()
        self.sources: dict[str, MediaStreamTrack] = {}
        self.pcs: list[RTCPeerConnection] = []
        self.ready = asyncio.Event()

    async def publish(self, sdp: str) -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pcs.append(pc)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.sources[track.kind] = track
            if len(self.sources) == 2:
                self.ready.set()

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def watch(self, viewer: str, sdp: str) -> str:
        await asyncio.wait_for(self.ready.wait(), 10)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pcs.append(pc)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        for transceiver in pc.getTransceivers():
            proxy = self.media_relay.subscribe(self.sources[transceiver.kind], buffered=False)
            transceiver.sender.replaceTrack(proxy)
            transceiver.direction = "sendonly"
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    def stats(self) -> dict[str, Any]:
        return {}

    async def close(self) -> None:
        for pc in self.pcs:
            await pc.close()


class LoopLag:
    """How late the relay's event loop wakes a 10 ms timer: scheduling delay plus blocking work."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    async def run(self) -> None:
        while True:
            due = time.monotonic() + 0.01
            await asyncio.sleep(0.01)
            self.samples.append(time.monotonic() - due)

    def take(self) -> list[float]:
        samples, self.samples = self.samples, []
        return samples


async def serve(mode: str, port: int, wire: str | None = None, overload: bool = False,
                pull_from: str | None = None) -> None:
    control: PassthroughControl | MediaRelayControl
    if mode == "mediarelay":
        control = MediaRelayControl()
    else:
        control = PassthroughControl(direct_send=mode == "passthrough", wire=wire, overload=overload)
    lag = LoopLag()
    lag_task = asyncio.ensure_future(lag.run())

    async def publish(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"sdp": await control.publish(body["sdp"])})

    async def watch(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            return web.json_response({"sdp": await control.watch(body["id"], body["sdp"])})
        except RelayError as exc:
            return web.json_response({"error": exc.code}, status=503 if exc.code == "relay_busy" else 409)

    async def pull(request: web.Request) -> web.Response:
        body = await request.json()
        assert isinstance(control, PassthroughControl)
        return web.json_response({"sdp": await control.pull(body["id"], body["sdp"])})

    async def stats(request: web.Request) -> web.Response:
        samples = sorted(lag.take()) or [0.0]
        lag_p99 = samples[min(len(samples) - 1, int(0.99 * len(samples)))]
        return web.json_response({"cpu": cpu_seconds(), "at": time.monotonic(), "lag_p99": lag_p99,
                                  "lag_max": samples[-1], **control.stats()})

    app = web.Application()
    app.add_routes([web.post("/publish", publish), web.post("/watch", watch), web.post("/pull", pull),
                    web.get("/stats", stats)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    if pull_from is not None:
        assert isinstance(control, PassthroughControl)
        await control.pull_from(pull_from)
    print(f"ready {port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        lag_task.cancel()
        await control.close()
        await runner.cleanup()
