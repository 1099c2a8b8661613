"""Test endpoints: real aiortc peers that play the browser's part against the relay.

They offer (as browsers do), send synthetic media encoded by aiortc's own encoders, and decode
what they receive with aiortc's own decoders, so a test can say "frames arrived and decoded".
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack, VideoStreamTrack
from av import VideoFrame

from relay.aiortc_hooks import take_encoded_frames
from relay.depacketizer import AudioAssembler, VideoAssembler


class PatternVideoTrack(VideoStreamTrack):
    """Small frames with a moving bar, so the encoder produces real delta frames."""

    def __init__(self, width: int = 160, height: int = 120) -> None:
        super().__init__()
        self.width = width
        self.height = height
        self.count = 0
        self.sent_at: dict[int, float] = {}

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=self.width, height=self.height, format="yuv420p")
        bar = (self.count * 4) % self.width
        row = bytes(min(255, abs(x - bar) * 3) for x in range(self.width))
        frame.planes[0].update(row * self.height)
        chroma = bytes([128]) * (frame.planes[1].buffer_size)
        frame.planes[1].update(chroma)
        frame.planes[2].update(chroma)
        frame.pts = pts
        frame.time_base = time_base
        self.sent_at[pts] = time.monotonic()
        self.count += 1
        return frame


class Endpoint:
    """An aiortc peer that offers to the relay, like a browser tab.

    :param send: kinds it publishes. :param receive: kinds it wants to receive.
    :param decode: decode received media (else only count encoded frames, which is much cheaper).
    :param video_codec: offer only this video codec ("VP8", "H264").
    """

    def __init__(
        self,
        name: str,
        *,
        send: tuple[str, ...] = ("audio", "video"),
        receive: tuple[str, ...] = ("audio", "video"),
        data_channel: bool = True,
        video_size: tuple[int, int] = (160, 120),
        decode: bool = True,
        video_codec: str | None = None,
    ) -> None:
        self.name = name
        self.decode = decode
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.decoded: dict[str, int] = {"audio": 0, "video": 0}
        self.first_frame_at: dict[str, float] = {}
        self.video_pts: list[int] = []  # decoding: each decoded video frame's pts (its RTP timestamp)
        self.chat: list[str] = []
        self.chat_event = asyncio.Event()
        self._frame_events: dict[str, asyncio.Event] = {"audio": asyncio.Event(), "video": asyncio.Event()}
        self._tasks: list[asyncio.Task[None]] = []
        self.tracks: dict[str, MediaStreamTrack] = {}
        for kind in ("audio", "video"):
            if kind not in send and kind not in receive:
                continue
            direction = {(True, True): "sendrecv", (True, False): "sendonly", (False, True): "recvonly"}[
                (kind in send, kind in receive)
            ]
            track: MediaStreamTrack | None = None
            if kind in send:
                track = PatternVideoTrack(*video_size) if kind == "video" else AudioStreamTrack()
                self.tracks[kind] = track
            transceiver = self.pc.addTransceiver(track if track is not None else kind, direction=direction)
            if kind == "video" and video_codec is not None:
                transceiver.setCodecPreferences(
                    [c for c in RTCRtpSender.getCapabilities("video").codecs
                     if c.mimeType.lower() in (f"video/{video_codec.lower()}", "video/rtx")]
                )
        self.channel = self.pc.createDataChannel("chat") if data_channel else None
        if self.channel is not None:

            @self.channel.on("message")
            def on_message(message: object) -> None:
                if isinstance(message, str):
                    self.chat.append(message)
                    self.chat_event.set()

        self.pc.on("track", self._on_track)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    def _on_track(self, track: MediaStreamTrack) -> None:
        if self.decode:
            self._tasks.append(asyncio.ensure_future(self._consume(track)))
            return
        # Count encoded frames with the relay's own receiver hook: no decoder, little CPU.
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track)
        codecs = {97: "VP8", 99: "H264", 101: "H264", 96: "OPUS"}
        if track.kind == "video":
            assembler: VideoAssembler | AudioAssembler = VideoAssembler(
                codecs, lambda *frame: self._count(track.kind), lambda: None
            )
        else:
            assembler = AudioAssembler(codecs, lambda *frame: self._count(track.kind))
        take_encoded_frames(receiver, assembler)

    def _count(self, kind: str) -> None:
        self.decoded[kind] += 1
        self.first_frame_at.setdefault(kind, time.monotonic())
        self._frame_events[kind].set()

    async def _consume(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                kind = track.kind
                if kind == "video" and frame.pts is not None:
                    self.video_pts.append(frame.pts)
                self.decoded[kind] += 1
                self.first_frame_at.setdefault(kind, time.monotonic())
                self._frame_events[kind].set()

    async def wait_decoded(self, kind: str, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` frames of ``kind`` decoded, or fail after ``timeout`` seconds."""

        async def reached() -> None:
            while self.decoded[kind] < count:
                self._frame_events[kind].clear()
                await self._frame_events[kind].wait()

        await asyncio.wait_for(reached(), timeout)

    def video_ssrcs(self) -> set[int]:
        """The SSRCs this endpoint's video receiver heard in the last 10 s."""
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.kind == "video")
        return {s.source for s in receiver.getSynchronizationSources()}

    async def wait_connected(self, timeout: float = 10.0) -> None:
        async def connected() -> None:
            while self.pc.connectionState != "connected":
                await asyncio.sleep(0.02)

        await asyncio.wait_for(connected(), timeout)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
