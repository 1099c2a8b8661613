"""The compiled writer sends byte for byte what the pure-Python one sends, and both send aiortc's RTP and SRs."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpSendParameters
from aiortc.rtp import (
    HeaderExtensionsMap,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
    is_rtcp,
)
from pylibsrtp import Policy, Session

from relay import wire
from relay.aiortc_hooks import extension_template, report_handles, srtp_handles

compiled = pytest.mark.skipif(wire.COMPILED is None, reason="relay._wire is not built")

SSRC, PAYLOAD_TYPE, MID = 0x11223344, 96, "1"


def extensions_map() -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpSendParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
        RTCRtpHeaderExtensionParameters(id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
    ]))
    return extensions


class Sink:
    """A UDP socket that collects what one writer sends, and the writer's own socket."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.setblocking(False)
        self.sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sender.bind(("127.0.0.1", 0))
        self.sender.setblocking(False)

    async def take(self, count: int) -> list[bytes]:
        loop = asyncio.get_running_loop()
        return [await asyncio.wait_for(loop.sock_recv(self.sock, 4096), 5) for _ in range(count)]

    def close(self) -> None:
        self.sock.close()
        self.sender.close()


@pytest.fixture
async def sinks() -> AsyncIterator[Callable[[], Sink]]:
    made: list[Sink] = []

    def make() -> Sink:
        made.append(Sink())
        return made[-1]

    yield make
    for sink in made:
        sink.close()


def make_writer(kind: wire.WireKind, key: bytes, sink: Sink, *, sequence: int = 65530, origin: int = 0xFFFFFF00,
                extensions: HeaderExtensionsMap | None = None, report_interval_ms: int | None = None) -> Any:
    """A writer to ``sink``; with ``report_interval_ms``, one that sends sender reports (CNAME below)."""
    session = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    protect, srtp = srtp_handles(session)
    block, at = extension_template(extensions or extensions_map(), MID)
    reports = () if report_interval_ms is None else (report_handles(), CNAME, report_interval_ms)
    return kind.writer(sink.sender.fileno(), sink.sock.getsockname(), protect, srtp, session, SSRC, PAYLOAD_TYPE,
                       sequence, origin, block, at, 128, *reports)


#: Frames as the fan-out hands them over: (payloads, pts). A delta frame (equal packets and a shorter
#: last one), a keyframe of more packets than one GSO send holds, a one-packet (audio-like) frame,
#: a frame of uneven packets.
FRAMES = [
    ([bytes([1]) * 1100, bytes([2]) * 1100, bytes([3]) * 300], 3000),
    ([bytes([i % 256]) * 1000 for i in range(70)] + [b"\x07" * 10], 6000),
    ([b"opus" * 30], 9000),
    ([b"\x01" * 500, b"\x02" * 900, b"\x03" * 700], 12000),
]
NTP = 0x0123456789ABCDEF


def expected_rtp(sequence: int, origin: int) -> list[bytes]:
    """What aiortc's own sender would put on the wire for FRAMES (before SRTP)."""
    extensions = extensions_map()
    packets = []
    for payloads, pts in FRAMES:
        for i, payload in enumerate(payloads):
            packet = RtpPacket(PAYLOAD_TYPE, i == len(payloads) - 1, sequence, (origin + pts) & 0xFFFFFFFF, SSRC,
                               payload)
            packet.extensions.abs_send_time = (NTP >> 14) & 0xFFFFFF
            packet.extensions.mid = MID
            packets.append(packet.serialize(extensions))
            sequence = (sequence + 1) & 0xFFFF
    return packets


async def send_all(kind: wire.WireKind, key: bytes, sink: Sink, gso: bool) -> tuple[list[bytes], Any]:
    writer = make_writer(kind, key, sink)
    previous = wire.set_gso(gso)
    try:
        for payloads, pts in FRAMES:
            assert writer.send(payloads, pts, NTP)
    finally:
        wire.set_gso(previous[0])
    datagrams = await sink.take(sum(len(p) for p, _ in FRAMES))
    return datagrams, writer


@compiled
@pytest.mark.parametrize("gso", [True, False], ids=["gso", "no-gso"])
async def test_compiled_writer_sends_the_same_srtp_datagrams_as_the_python_writer(
    sinks: Callable[[], Sink], gso: bool
) -> None:
    assert wire.COMPILED is not None
    key = os.urandom(30)
    python, python_writer = await send_all(wire.PYTHON, key, sinks(), gso)
    native, native_writer = await send_all(wire.COMPILED, key, sinks(), gso)
    assert native == python, "the same SRTP datagrams, byte for byte, in the same order"
    inbound = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
    assert [inbound.unprotect(d) for d in native] == expected_rtp(65530, 0xFFFFFF00)
    assert native_writer.counts == python_writer.counts and native_writer.frames == python_writer.frames
    assert native_writer.sequence == python_writer.sequence
    for slot in range(128):
        assert native_writer.packet(slot) == python_writer.packet(slot), f"history slot {slot}"
    native_writer.close()
    python_writer.close()


@pytest.mark.parametrize("kind", ["python", "compiled"])
async def test_writer_counts_what_aiortc_counts_for_sender_reports_and_keeps_packets_for_nacks(
    sinks: Callable[[], Sink], kind: str
) -> None:
    if kind == "compiled" and wire.COMPILED is None:
        pytest.skip("relay._wire is not built")
    key = os.urandom(30)
    datagrams, writer = await send_all(wire.wire_kind(kind), key, sinks(), True)
    payloads, pts = FRAMES[-1]
    octets = sum(len(p) for frame, _ in FRAMES for p in frame)
    wire_bytes = sum(len(d) for d in datagrams)
    assert writer.counts == (NTP, (0xFFFFFF00 + pts) & 0xFFFFFFFF, octets, len(datagrams), wire_bytes)
    assert writer.frames == len(FRAMES)
    expected = expected_rtp(65530, 0xFFFFFF00)
    last = RtpPacket.parse(expected[-1], extensions_map())
    assert writer.packet(last.sequence_number % 128) == expected[-1]
    writer.close()
    assert writer.closed and writer.send(payloads, pts, NTP), "a closed writer ignores frames"


@pytest.mark.parametrize("kind", ["python", "compiled"])
async def test_fanout_writes_a_frame_to_every_writer_with_its_own_sequence_numbers(
    sinks: Callable[[], Sink], kind: str
) -> None:
    if kind == "compiled" and wire.COMPILED is None:
        pytest.skip("relay._wire is not built")
    chosen = wire.wire_kind(kind)
    key = os.urandom(30)
    open_sinks = [sinks() for _ in range(3)]
    writers = [make_writer(chosen, key, sink, sequence=100 * i) for i, sink in enumerate(open_sinks)]
    payloads, pts = FRAMES[0]
    assert chosen.fanout(writers, payloads, pts, NTP) == []
    inbound = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
    for i, sink in enumerate(open_sinks):
        got = [RtpPacket.parse(inbound.unprotect(d)) for d in await sink.take(len(payloads))]
        assert [p.sequence_number for p in got] == [100 * i + n for n in range(len(payloads))]
        assert [p.payload for p in got] == payloads
    for writer in writers:
        writer.close()


CNAME = b"relay-cname"


#: NTP times (seconds << 32) of four frames: the first report goes with the first frame, the next one
#: 0.5-1.5 intervals (here 1 s) later, so not with a frame 0.4 s on, and always with one 1.6 s on.
REPORT_TIMES = [NTP, NTP + (4 << 32) // 10, NTP + (16 << 32) // 10, NTP + (40 << 32) // 10]


async def send_reporting(kind: wire.WireKind, key: bytes, sink: Sink, gso: bool) -> tuple[list[bytes], Any]:
    writer = make_writer(kind, key, sink, sequence=100, origin=0, report_interval_ms=1000)
    previous = wire.set_gso(gso)
    try:
        for (payloads, pts), ntp in zip(FRAMES, REPORT_TIMES, strict=True):
            assert writer.send(payloads, pts, ntp)
    finally:
        wire.set_gso(previous[0])
    reports = writer.report[0]
    datagrams = await sink.take(sum(len(p) for p, _ in FRAMES) + reports)
    return datagrams, writer


def aiortc_report(ntp: int, timestamp: int, packets: int, octets: int) -> bytes:
    """The SR + SDES aiortc's RTCRtpSender._run_rtcp sends for these values."""
    sr = RtcpSrPacket(ssrc=SSRC, sender_info=RtcpSenderInfo(
        ntp_timestamp=ntp, rtp_timestamp=timestamp, packet_count=packets, octet_count=octets))
    sdes = RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=SSRC, items=[(1, CNAME)])])
    return bytes(sr) + bytes(sdes)


@pytest.mark.parametrize("gso", [True, False], ids=["gso", "no-gso"])
async def test_writers_send_aiortcs_sender_report_with_the_first_frame_and_then_at_the_interval(
    sinks: Callable[[], Sink], gso: bool
) -> None:
    key = os.urandom(30)
    kinds = [wire.PYTHON] + ([wire.COMPILED] if wire.COMPILED is not None else [])
    sent = [await send_reporting(kind, key, sinks(), gso) for kind in kinds]
    datagrams, writer = sent[0]
    for other, other_writer in sent[1:]:
        assert other == datagrams, "the compiled writer sends the same datagrams, SRs included, byte for byte"
        assert other_writer.report[:2] == writer.report[:2] and other_writer.counts == writer.counts
    inbound = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
    reports = [inbound.unprotect_rtcp(d) for d in datagrams if is_rtcp(d)]
    rtp = [inbound.unprotect(d) for d in datagrams if not is_rtcp(d)]
    assert len(rtp) == sum(len(p) for p, _ in FRAMES)
    # Reports with frames 1, 3 and 4 (0.4 s is too early, 1.6 s and 4.0 s are past 1.5 intervals), each
    # counting every packet and octet sent up to and including its frame, with that frame's times.
    expected = []
    packets = octets = 0
    for i, ((payloads, pts), ntp) in enumerate(zip(FRAMES, REPORT_TIMES, strict=True)):
        packets += len(payloads)
        octets += sum(len(p) for p in payloads)
        if i != 1:
            expected.append(aiortc_report(ntp, pts, packets, octets))
    assert reports == expected
    assert writer.report[0] == 3 and writer.report[1] == (REPORT_TIMES[-1] >> 16) & 0xFFFFFFFF
    assert writer.counts[4] == sum(len(d) for d in datagrams), "the SRTCP bytes count as sent on the transport"
    assert writer.counts[3] == len(rtp), "the SR is not an RTP packet of the sender's"
    for _, w in sent:
        w.close()


@pytest.mark.parametrize("kind", ["python", "compiled"])
async def test_a_writer_refuses_reports_without_an_interval(sinks: Callable[[], Sink], kind: str) -> None:
    if kind == "compiled" and wire.COMPILED is None:
        pytest.skip("relay._wire is not built")
    with pytest.raises(ValueError, match="bad writer parameters"):
        make_writer(wire.wire_kind(kind), os.urandom(30), sinks(), report_interval_ms=0)
