"""The benchmark's publisher and viewers, each run as its own process by bench/relay_fanout.py.

The publisher replays pre-encoded 640x480 VP8 (~1 Mbps, 30 fps) and Opus packets, so its CPU stays
small; each video frame carries a trailer with its send time (``time.monotonic()``, which on Linux
is one clock for every process), so a viewer can measure glass-to-glass latency. A keyframe request
restarts the replay at its keyframe. Viewers count encoded frames with the relay's own receiver
hook instead of decoding (decoding hundreds of streams would need far more than 2 cores).

Both talk JSON lines on stdio with the orchestrator and HTTP with the relay's control server.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import math
import os
import random
import resource
import struct
import sys
import time
from typing import Any

import aiohttp
import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from relay.aiortc_hooks import on_keyframe_request, pack_without_encoder, take_encoded_frames
from relay.depacketizer import AudioAssembler, VideoAssembler
from relay.packetizer import ForwardCounters, Packetizer

TRAILER = struct.Struct("!4sd")
MAGIC = b"SSLT"
VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def encode_video(seconds: float, width: int = 640, height: int = 480, bitrate: int = 1_000_000) -> list[bytes]:
    """A GOP of VP8 frames (keyframe first): a panning blocky texture with a noisy patch.

    Tuned to look like a webcam at 1 Mbps to the relay: ~30 KB keyframe, ~3.5 KB delta frames.
    """
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = fractions.Fraction(1, 30)
    codec.bit_rate = bitrate
    codec.gop_size = 100000
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                     "minrate": str(bitrate), "maxrate": str(bitrate), "bufsize": str(bitrate)}
    rnd = random.Random(1)
    block, noise, stride = 4, 64, width + 256
    rows: list[bytes] = []
    for _ in range(height // block):
        row = b"".join(bytes([rnd.randrange(40, 216)]) * block for _ in range(stride // block))
        rows.extend([row] * block)
    texture = b"".join(rows)
    frames: list[bytes] = []
    for i in range(int(seconds * 30)):
        frame = av.VideoFrame(width=width, height=height, format="yuv420p")
        dx = (i * 3) % 256
        luma = bytearray(b"".join(texture[r * stride + dx : r * stride + dx + width] for r in range(height)))
        for r in range(noise):
            start = (100 + r) * width + 200
            luma[start : start + noise] = os.urandom(noise)
        frame.planes[0].update(bytes(luma))
        chroma = bytes([128]) * frame.planes[1].buffer_size
        frame.planes[1].update(chroma)
        frame.planes[2].update(chroma)
        frame.pts = i
        frames.extend(bytes(p) for p in codec.encode(frame))
    return frames


def encode_audio(seconds: float) -> list[bytes]:
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format, codec.bit_rate = 48000, "stereo", "s16", 32000
    packets: list[bytes] = []
    for i in range(int(seconds * 50)):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        samples = b"".join(struct.pack("<hh", s, s) for s in (
            int(8000 * math.sin(2 * math.pi * 440 * (i * 960 + n) / 48000)) for n in range(960)))
        frame.planes[0].update(samples)
        frame.sample_rate, frame.pts = 48000, i * 960
        packets.extend(bytes(p) for p in codec.encode(frame))
    return packets


class ReplayTrack(MediaStreamTrack):
    """Replays encoded frames at a fixed rate as ``av.Packet``s (no encoder in the loop)."""

    def __init__(self, kind: str, frames: list[bytes], rate: int, trailer: bool) -> None:
        super().__init__()
        self.kind = kind
        self._frames = frames
        self._period = 1 / rate
        self._step = (90000 if kind == "video" else 48000) // rate
        self._trailer = trailer
        self._index = 0
        self._start: float | None = None
        self.sent = 0
        self.keyframe_requests = 0

    def restart(self) -> None:
        """Answer a keyframe request: continue from the replay's keyframe."""
        self.keyframe_requests += 1
        self._index -= self._index % len(self._frames)

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.sent * self._period
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        data = self._frames[self._index % len(self._frames)]
        if self._trailer:
            data += TRAILER.pack(MAGIC, time.monotonic())
        packet = av.Packet(data)
        packet.pts = self.sent * self._step
        packet.time_base = VIDEO_TIME_BASE if self.kind == "video" else AUDIO_TIME_BASE
        self._index += 1
        self.sent += 1
        return packet


async def exchange(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> str:
    async with session.post(url, json=body) as response:
        reply = await response.json()
        if response.status != 200:
            raise RuntimeError(f"{url}: {reply}")
        return str(reply["sdp"])


async def run_publisher(relay_url: str) -> None:
    video = ReplayTrack("video", await asyncio.to_thread(encode_video, 2.0), 30, trailer=True)
    audio = ReplayTrack("audio", await asyncio.to_thread(encode_audio, 1.0), 50, trailer=False)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for track, codec in ((video, "VP8"), (audio, "opus")):
        sender = pc.addTransceiver(track, direction="sendonly").sender
        pack_without_encoder(sender, Packetizer(codec, ForwardCounters()))
        if track is video:
            on_keyframe_request(sender, video.restart)
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as session:
        answer = await exchange(session, f"{relay_url}/publish", {"sdp": pc.localDescription.sdp})
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    bitrate = sum(len(f) for f in video._frames) * 8 / 2.0
    await serve_commands({"ready": True, "video_bitrate": bitrate}, lambda: {
        "sent": video.sent, "keyframes": video.keyframe_requests,
        "cpu": cpu_seconds(), "at": time.monotonic(),
    })
    await pc.close()


class Viewer:
    """One viewer connection that counts (does not decode) the frames it receives."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video = 0
        self.audio = 0
        self.answered_at = 0.0
        self.first_frame = asyncio.Event()
        self.ttff: float | None = None
        self.latencies: list[float] = []
        for kind in ("audio", "video"):
            self.pc.addTransceiver(kind, direction="recvonly")
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track)
        codecs = {97: "VP8", 96: "OPUS"}
        if track.kind == "video":
            take_encoded_frames(receiver, VideoAssembler(codecs, self._on_video, lambda: None))
        else:
            take_encoded_frames(receiver, AudioAssembler(codecs, self._on_audio))

    def _on_video(self, codec: str, data: bytes, timestamp: int, keyframe: bool) -> None:
        now = time.monotonic()
        self.video += 1
        if self.ttff is None:
            self.ttff = now - self.answered_at
            self.first_frame.set()
        magic, sent_at = TRAILER.unpack_from(data, len(data) - TRAILER.size)
        if magic == MAGIC:
            self.latencies.append(now - sent_at)

    def _on_audio(self, codec: str, data: bytes, timestamp: int, keyframe: bool) -> None:
        self.audio += 1

    async def join(self, session: aiohttp.ClientSession, relay_url: str) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = {"id": self.name, "sdp": self.pc.localDescription.sdp}
        answer = await exchange(session, f"{relay_url}/watch", offer)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        self.answered_at = time.monotonic()


async def run_viewers(relay_url: str, prefix: str) -> None:
    viewers: list[Viewer] = []
    session = aiohttp.ClientSession()

    async def add(count: int) -> dict[str, Any]:
        new = [Viewer(f"{prefix}-{len(viewers) + i}") for i in range(count)]
        viewers.extend(new)
        for start in range(0, count, 10):  # joins in small concurrent groups
            await asyncio.gather(*(v.join(session, relay_url) for v in new[start : start + 10]))
        pending = [v.first_frame.wait() for v in new]
        await asyncio.wait_for(asyncio.gather(*pending), 60)
        return {"ttff": [v.ttff for v in new]}

    def stats() -> dict[str, Any]:
        latencies = [x for v in viewers for x in v.latencies]
        for v in viewers:
            v.latencies.clear()
        sample = [round(x, 5) for x in random.sample(latencies, min(len(latencies), 2000))]
        return {"video": [v.video for v in viewers], "audio": [v.audio for v in viewers],
                "latency": sample, "cpu": cpu_seconds(), "at": time.monotonic()}

    await serve_commands({"ready": True}, stats, add)
    for v in viewers:
        await v.pc.close()
    await session.close()


async def serve_commands(hello: dict[str, Any], stats: Any, add: Any = None) -> None:
    """Answer the orchestrator's JSON-line commands (stats, add, quit) until quit or EOF."""
    print(json.dumps(hello), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        command = json.loads(line)
        if command["op"] == "quit":
            print(json.dumps({"bye": True}), flush=True)
            return
        reply = await add(command["count"]) if command["op"] == "add" else stats()
        print(json.dumps(reply), flush=True)
