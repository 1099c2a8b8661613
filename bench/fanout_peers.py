"""The benchmark's publisher and viewers, each run as its own process by bench/fanout.py.

The publisher replays pre-encoded 640x480 VP8 (~1 Mbps, 30 fps) and Opus packets, so its CPU stays
small; each video frame carries a trailer with its send time (``time.monotonic()``, which on Linux
is one clock for every process), so a viewer can measure glass-to-glass latency. A keyframe request
restarts the replay at its keyframe.

Viewers come in two kinds, because the bench must run hundreds of them on the relay's own (2-core)
machine without taking the relay's CPU. Every viewer is a real aiortc peer for signaling, ICE
(consent checks answered) and DTLS-SRTP, and sends its RTCP, so the relay serves what it would serve
a browser. A *lite* viewer then takes the datagrams that carry media before aioice and aiortc see
them and counts them from the RTP header SRTP leaves in the clear: complete frames (marker bit,
no sequence gap), lost packets, the first frame's arrival. It never decrypts, parses or reassembles:
~0.3% of a core per viewer against a full viewer's ~0.8% (at 100 viewers, 50 per process; most of
what is left is the peer's RTCP, STUN consent and event loop, ~0.14% with no media at all). A *probe*
(one per viewer process by default) is a full viewer: it decrypts, reassembles frames with the
relay's own receiver hook (no decoding: hundreds of decoders would need far more than 2 cores) and
reads each frame's send-time trailer, so latency is measured on real, decrypted frames; it counts
the wire too, which checks the lite counting against real frames. A viewer process polls its
sockets once a millisecond instead of waking for every packet, which on loopback the relay would
pay for (:class:`PacedSelector`).

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
import selectors
import struct
import sys
import time
from typing import Any

import aiohttp
import av
from aioice import Connection
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import SessionDescription

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


class Refused(Exception):
    """The server refused a viewer (full, busy): the bench counts it and goes on."""


#: Server answers that mean "not one more", counted as refusals rather than failures.
REFUSALS = {"relay_busy", "relay_full", "stream_full"}


async def exchange(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> str:
    async with session.post(url, json=body) as response:
        reply = await response.json()
        if response.status != 200:
            if reply.get("error") in REFUSALS:
                raise Refused(reply["error"])
            raise RuntimeError(f"{url}: {reply}")
        return str(reply["sdp"])


async def run_publisher(relay_url: str, publish: Any = None) -> None:
    """Publish to the bench relay (POST /publish), or through ``publish(offer) -> answer`` if given."""
    video = ReplayTrack("video", await asyncio.to_thread(encode_video, 2.0), 30, trailer=True)
    audio = ReplayTrack("audio", await asyncio.to_thread(encode_audio, 1.0), 50, trailer=False)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for track, codec in ((video, "VP8"), (audio, "opus")):
        sender = pc.addTransceiver(track, direction="sendonly").sender
        pack_without_encoder(sender, Packetizer(codec, ForwardCounters()))
        if track is video:
            on_keyframe_request(sender, video.restart)
    await pc.setLocalDescription(await pc.createOffer())
    if publish is not None:
        answer = await publish(pc.localDescription.sdp)
    else:
        async with aiohttp.ClientSession() as session:
            answer = await exchange(session, f"{relay_url}/publish", {"sdp": pc.localDescription.sdp})
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    bitrate = sum(len(f) for f in video._frames) * 8 / 2.0
    await serve_commands({"ready": True, "video_bitrate": bitrate}, lambda: {
        "sent": video.sent, "keyframes": video.keyframe_requests, "state": pc.connectionState,
        "cpu": cpu_seconds(), "at": time.monotonic(),
    })
    await pc.close()


#: Seconds a joining viewer may wait for its first video frame before it is reported as without one.
FIRST_FRAME_TIMEOUT = 60.0
#: The fixed RTP header (RFC 3550 5.1): V/P/X/CC, M/PT, sequence number, timestamp, SSRC.
RTP_HEADER = struct.Struct("!BBHII")
#: Formats that repeat or protect another payload type rather than carry media of their own.
NOT_MEDIA = {"rtx", "red", "ulpfec", "flexfec-03"}


def media_payload_types(sdp: str) -> dict[int, tuple[str, str]]:
    """Payload type -> (kind, codec) of the media formats an SDP negotiates.

    Read from the relay's answer, so counting follows what was negotiated, not aiortc's defaults.
    RTCP's packet types 192-223 show as 64-95 once the marker bit is masked (RFC 5761 section 4),
    so no payload type in that range is trusted to mean RTP.
    """
    types: dict[int, tuple[str, str]] = {}
    for media in SessionDescription.parse(sdp).media:
        for codec in media.rtp.codecs:
            name = codec.mimeType.split("/", 1)[1]
            if codec.payloadType is not None and name.lower() not in NOT_MEDIA and not 64 <= codec.payloadType < 96:
                types[codec.payloadType] = (media.kind, name.upper())
    return types


class RtpStream:
    """One SSRC's sequence numbers, extended past 16 bits: losses, and which frames came whole."""

    __slots__ = ("first", "frame_packets", "frame_start", "highest", "last", "received")

    def __init__(self, seq: int) -> None:
        self.first = seq
        self.highest = seq - 1  # extended highest sequence number
        self.last = (seq - 1) & 0xFFFF  # the same, as sent
        self.received = 0
        self.frame_start = seq - 1  # the last marker packet's extended sequence number
        self.frame_packets = 0  # packets received after it

    def add(self, seq: int) -> int:
        """Count a packet; its extended sequence number."""
        self.received += 1
        delta = (seq - self.last) & 0xFFFF
        if delta < 0x8000:
            self.highest += delta
            self.last = seq
            extended = self.highest
        else:  # older than the highest: reordered or duplicated
            extended = self.highest - (0x10000 - delta)
        if extended > self.frame_start:
            self.frame_packets += 1
        return extended

    def end_frame(self, extended: int) -> bool:
        """A marker packet ends a frame: whether every packet since the last marker arrived."""
        if extended <= self.frame_start:
            return False  # a late or repeated marker: that frame is done
        whole = self.frame_packets >= extended - self.frame_start
        self.frame_start, self.frame_packets = extended, 0
        return whole


class WireCounter:
    """Counts a viewer's incoming RTP from the header SRTP leaves in the clear (RFC 3711 section 3.1).

    Nothing is decrypted. A packet of a negotiated media payload type counts toward its SSRC's
    sequence (RFC 3550 A.3: packets expected, from the extended highest sequence number, minus
    packets received is what was lost), and a video packet with the marker bit ends a frame, which
    counts when no packet since the previous marker is missing. A lite viewer sends no NACKs, so a
    loss is final. The payload (encrypted) is never read: a frame can't be told to be a keyframe,
    so after a loss the frames that reference the lost one still count. Counting only what is on
    the wire keeps the measure independent of how the relay builds its packets.
    """

    def __init__(self) -> None:
        self.kinds: dict[int, str] = {}  # payload type -> kind, from the answer, before media can arrive
        self.video_frames = 0
        self.first_video_at: float | None = None
        self.first_video = asyncio.Event()
        self._streams: dict[int, RtpStream] = {}

    def observe(self, data: bytes) -> bool:
        """Count ``data`` if it is RTP of a negotiated media payload type; say whether it was."""
        if len(data) < 12 or not 127 < data[0] < 192:  # RFC 7983: RTP/RTCP start with 128..191
            return False
        _, marker_type, seq, _, ssrc = RTP_HEADER.unpack_from(data)
        kind = self.kinds.get(marker_type & 0x7F)
        if kind is None:
            return False
        stream = self._streams.get(ssrc)
        if stream is None:
            stream = self._streams[ssrc] = RtpStream(seq)
        extended = stream.add(seq)
        if marker_type & 0x80 and kind == "video" and stream.end_frame(extended):
            self.video_frames += 1
            if self.first_video_at is None:
                self.first_video_at = time.monotonic()
                self.first_video.set()
        return True

    def packets(self) -> tuple[int, int]:
        """(expected, received) RTP packets so far, over every stream."""
        streams = self._streams.values()
        return sum(s.highest - s.first + 1 for s in streams), sum(s.received for s in streams)


class Viewer:
    """One viewer connection; a lite viewer counts media on the wire, a probe also decrypts it.

    Both keep aiortc's signaling, ICE (including answering consent checks) and DTLS, so the relay
    serves a standard peer. A lite viewer takes the datagrams that carry media from aioice before
    they are queued for aiortc's DTLS/SRTP transport, counts their RTP headers (:class:`WireCounter`)
    and drops them: SRTP, RTP parsing and frame assembly would more than double a viewer's CPU and
    make hundreds of viewers on a small machine compete with the relay for it. Everything
    else (STUN, DTLS, SRTCP) reaches aioice and aiortc untouched. A probe lets media through too,
    assembles frames with the relay's receiver hook and reads each frame's send-time trailer, so
    glass-to-glass latency comes from real, decrypted frames.
    """

    def __init__(self, name: str, probe: bool) -> None:
        self.name = name
        self.probe = probe
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.wire = WireCounter()
        self.assembled = 0  # probes: complete video frames out of the assembler
        self.answered_at = 0.0
        self.first_frame = asyncio.Event()
        self.ttff: float | None = None
        self.latencies: list[float] = []
        self._codecs: dict[int, str] = {}
        self.pc.on("track", self._on_track)

    @property
    def video(self) -> int:
        """Video frames received: assembled (decodable in order) for a probe, on the wire otherwise."""
        return self.assembled if self.probe else self.wire.video_frames

    def _on_track(self, track: MediaStreamTrack) -> None:
        # A lite viewer's receivers get no media, but hooking them still spares two idle decoder
        # threads per viewer.
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track)
        if track.kind == "video":
            take_encoded_frames(receiver, VideoAssembler(self._codecs, self._on_video, lambda: None))
        else:
            take_encoded_frames(receiver, AudioAssembler(self._codecs, lambda *_: None))

    def _on_video(self, codec: str, data: bytes, timestamp: int, keyframe: bool) -> None:
        now = time.monotonic()
        self.assembled += 1
        if self.ttff is None:
            self.ttff = now - self.answered_at
            self.first_frame.set()
        magic, sent_at = TRAILER.unpack_from(data, len(data) - TRAILER.size)
        if magic == MAGIC:
            self.latencies.append(now - sent_at)

    async def join(self, session: aiohttp.ClientSession, relay_url: str) -> None:
        """Watch through the bench relay's control server (POST /watch: our offer, its answer)."""

        async def exchange_offer(offer: str) -> str:
            return await exchange(session, f"{relay_url}/watch", {"id": self.name, "sdp": offer})

        await self.offer_and_accept(exchange_offer)

    async def offer_and_accept(self, exchange_offer: Any) -> None:
        """Offer (recvonly audio + video), have ``exchange_offer`` get the server's answer, apply it."""
        for kind in ("audio", "video"):
            self.pc.addTransceiver(kind, direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        for connection in ice_connections(self.pc):
            tap_media(connection, self.wire, consume=not self.probe)
        answer = await exchange_offer(self.pc.localDescription.sdp)
        self._negotiated(answer)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        self.answered_at = time.monotonic()

    async def answer_offer(self, offer: str) -> str:
        """Answer a server's offer (Janus offers to its subscribers); the answer's SDP."""
        self._negotiated(offer)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        for connection in ice_connections(self.pc):
            tap_media(connection, self.wire, consume=not self.probe)
        self.answered_at = time.monotonic()
        return str(self.pc.localDescription.sdp)

    def _negotiated(self, sdp: str) -> None:
        types = media_payload_types(sdp)
        if not any(kind == "video" for kind, _ in types.values()):
            raise RuntimeError(f"{self.name}: the session negotiates no video format")
        self._codecs.update({pt: codec for pt, (_, codec) in types.items()})
        self.wire.kinds = {pt: kind for pt, (kind, _) in types.items()}

    async def wait_first_frame(self) -> float:
        """Seconds from applying the answer to the first video frame."""
        if self.probe:
            await self.first_frame.wait()
            assert self.ttff is not None
            return self.ttff
        await self.wire.first_video.wait()
        assert self.wire.first_video_at is not None
        return self.wire.first_video_at - self.answered_at


def ice_connections(pc: RTCPeerConnection) -> list[Connection]:
    """The aioice connections under ``pc``'s transceivers (one per transport before BUNDLE applies)."""
    connections: dict[int, Connection] = {}
    for transceiver in pc.getTransceivers():
        ice: Any = transceiver.receiver.transport.transport
        connections[id(ice._connection)] = ice._connection
    return list(connections.values())


def tap_media(connection: Connection, counter: WireCounter, *, consume: bool) -> None:
    """Show ``counter`` every datagram of ``connection`` first; drop the media ones if ``consume``.

    Call once candidates are gathered. Each local candidate has a ``StunProtocol`` whose
    ``datagram_received`` tells STUN from the rest and hands the rest to aiortc's DTLS transport
    (through ``Connection.data_received`` and a queue) to decrypt and route. Wrapping it sees every
    datagram of every candidate pair before aioice parses it; :meth:`WireCounter.observe` claims only
    RTP of a negotiated media payload type, so STUN, DTLS and SRTCP go on unchanged.
    """
    c: Any = connection
    if not c._protocols:
        raise RuntimeError("tap_media() needs gathered candidates")
    for protocol in c._protocols:
        deliver = protocol.datagram_received

        def datagram_received(data: bytes, addr: tuple[Any, ...], deliver: Any = deliver) -> None:
            if counter.observe(data) and consume:
                return
            deliver(data, addr)

        protocol.datagram_received = datagram_received


class PacedSelector(selectors.EpollSelector):
    """An epoll selector that sleeps ``interval`` before each wait that may block.

    On loopback the sender's ``sendto`` runs the receiving socket's network stack and, when the
    receiving process sleeps in ``epoll_wait``, wakes it up. Lite viewers idle between packets, so
    the relay paid for a wake-up per packet that remote viewers never cost it: 0.04-0.11 s/s more
    system time at 100 viewers than with a 1 ms pause, which also saves the viewers ~0.05 s/s per
    100. Woken by its own timer, a viewer process takes whatever arrived meanwhile. A packet waits
    at most ``interval`` longer (median glass-to-glass at 10 viewers did not rise: 2.7-2.9 ms vs
    3.0-3.3 ms without); timers are never late.
    """

    def __init__(self, interval: float) -> None:
        super().__init__()
        self._interval = interval

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if self._interval > 0 and (timeout is None or timeout > 0):
            pause = self._interval if timeout is None else min(self._interval, timeout)
            time.sleep(pause)
            timeout = None if timeout is None else max(0.0, timeout - pause)
        return super().select(timeout)


def paced_loop(interval: float) -> asyncio.AbstractEventLoop:
    """An event loop whose sockets are polled at most every ``interval`` seconds (0: on arrival)."""
    return asyncio.SelectorEventLoop(PacedSelector(interval))


async def run_viewers(relay_url: str, prefix: str, probes: int, watch: Any = None) -> None:
    """A process of viewers: the first ``probes`` joined are probes, the rest lite.

    They watch through the bench relay's control server, or through ``watch(viewer)`` if given
    (the stream contract of ``soulseer serve``, Janus's VideoRoom: bench/stream_signals.py).
    """
    viewers: list[Viewer] = []
    session = aiohttp.ClientSession()

    refused: list[str] = []
    made = 0

    async def join(viewer: Viewer) -> bool:
        try:
            if watch is None:
                await viewer.join(session, relay_url)
            else:
                await watch(viewer)
        except Refused as exc:  # the server would not take one more viewer: counted, not fatal
            refused.append(str(exc))
            await viewer.pc.close()
            return False
        return True

    async def add(count: int) -> dict[str, Any]:
        nonlocal made
        new = [Viewer(f"{prefix}-{made + i}", probe=len(viewers) + i < probes) for i in range(count)]
        made += count
        refused.clear()
        for start in range(0, count, 10):  # joins in small concurrent groups
            group = new[start : start + 10]
            joined = await asyncio.gather(*(join(v) for v in group))
            viewers.extend(v for v, ok in zip(group, joined, strict=True) if ok)
        new = [v for v in new if v in viewers]
        if not new:  # every one refused
            return {"ttff": [], "no_frame": 0, "waited": FIRST_FRAME_TIMEOUT, "refused": len(refused),
                    "why": sorted(set(refused))[:3]}
        waits = [asyncio.ensure_future(v.wait_first_frame()) for v in new]
        done, pending = await asyncio.wait(waits, timeout=FIRST_FRAME_TIMEOUT)
        for wait in pending:
            wait.cancel()
        return {"ttff": [w.result() for w in waits if w in done], "no_frame": len(pending),
                "waited": FIRST_FRAME_TIMEOUT, "refused": len(refused), "why": sorted(set(refused))[:3]}

    def stats() -> dict[str, Any]:
        latencies = [x for v in viewers for x in v.latencies]
        for v in viewers:
            v.latencies.clear()
        sample = [round(x, 5) for x in random.sample(latencies, min(len(latencies), 2000))]
        packets = [v.wire.packets() for v in viewers]
        return {"video": [v.video for v in viewers], "probe": [v.probe for v in viewers],
                "wire": [v.wire.video_frames for v in viewers],
                "expected": sum(e for e, _ in packets), "received": sum(r for _, r in packets),
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
